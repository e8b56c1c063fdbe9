"""Training engine: config, model, tf.data parity with serving, the run loop, checkpoints.

A synthetic three-class texture set (stripes, checkerboards, dots in random high-contrast
colours with noise) is written as 64 px JPEGs; `small_cnn` learns it in a few seconds.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from classifier.engine.backends.keras import KerasBackend
from classifier.engine.evaluation import evaluate
from classifier.engine.inference import Classifier
from classifier.engine.preprocessing import PreprocessSpec, decode_image, preprocess
from classifier.engine.training import (
    DEFAULT_AUGMENTATION,
    TrainingConfig,
    TrainingError,
    build_model,
    compile_model,
    compute_class_weights,
    latest_checkpoint,
    make_dataset,
    train,
)

from .support import encode, rgb_image

REPO = Path(__file__).resolve().parents[3]
SIZE = 64
CLASSES = ["stripes", "checkerboard", "dots"]
PER_CLASS = {"train": 24, "val": 8, "test": 8}


def texture(kind: int, rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    dark = tuple(int(v) for v in rng.integers(0, 90, 3))
    light = tuple(int(v) for v in rng.integers(165, 256, 3))
    fg, bg = (dark, light) if rng.random() < 0.5 else (light, dark)
    image = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(image)
    if kind == 0:
        period = int(rng.integers(6, 14))
        horizontal = rng.random() < 0.5
        for p in range(0, size, period):
            box = (
                [0, p, size, p + period // 2 - 1]
                if horizontal
                else [p, 0, p + period // 2 - 1, size]
            )
            draw.rectangle(box, fill=fg)
    elif kind == 1:
        cell = int(rng.integers(5, 12))
        for i in range(0, size, cell):
            for j in range(0, size, cell):
                if (i // cell + j // cell) % 2:
                    draw.rectangle([i, j, i + cell - 1, j + cell - 1], fill=fg)
    else:
        for _ in range(int(rng.integers(6, 14))):
            r = int(rng.integers(3, 7))
            x, y = (int(v) for v in rng.integers(0, size, 2))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fg)
    noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, 12, (size, size, 3)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, list[tuple[str, int]]]:
    """{"train"|"val"|"test": [(path, label)]}: JPEGs of the three textures."""
    root = tmp_path_factory.mktemp("textures")
    rng = np.random.default_rng(0)
    splits: dict[str, list[tuple[str, int]]] = {name: [] for name in PER_CLASS}
    for label in range(len(CLASSES)):
        for split, count in PER_CLASS.items():
            for i in range(count):
                path = root / f"{split}-{CLASSES[label]}-{i}.jpg"
                texture(label, rng).save(path, quality=90)
                splits[split].append((str(path), label))
    return splits


def tiny_config(**overrides) -> TrainingConfig:
    values = {
        "architecture": "small_cnn",
        "image_size": SIZE,
        "epochs": 8,
        "batch_size": 8,
        "learning_rate": 3e-3,
        "weights": None,
    }
    return TrainingConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def trained(photos, tmp_path_factory):
    config = tiny_config()
    events: list[dict] = []
    workdir = tmp_path_factory.mktemp("run")
    result = train(
        config,
        photos["train"],
        photos["val"],
        config.preprocess_spec(),
        workdir=workdir,
        on_progress=events.append,
        progress_every=4,
    )
    return config, result, events, workdir


# -- importing -----------------------------------------------------------------------------


def test_importing_training_evaluation_and_plots_loads_no_ml_framework_and_no_django():
    script = (
        "import sys, json\n"
        "import classifier.engine.training, classifier.engine.evaluation, "
        "classifier.engine.plots\n"
        "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'django', "
        "'celery', 'matplotlib') if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# -- configuration -------------------------------------------------------------------------


def test_a_config_round_trips_through_json_with_its_defaults_resolved():
    config = TrainingConfig.from_dict({"epochs": 5, "augmentation": {"v_flip": 0.5}})
    data = json.loads(json.dumps(config.to_dict()))
    assert TrainingConfig.from_dict(data) == config
    assert data["architecture"] == "xception" and data["image_size"] == 299
    assert data["augmentation"] == {**DEFAULT_AUGMENTATION, "v_flip": 0.5}
    assert TrainingConfig.from_dict({"augmentation": None}).augmentation is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"architecture": "vgg16"}, "architecture must be one of xception"),
        ({"epochs": 0}, "epochs must be an integer between 1 and 1000"),
        ({"epochs": 2.5}, "epochs must be an integer"),
        ({"batch_size": True}, "batch_size must be an integer"),
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
        ({"image_size": 64}, "image_size must be at least 71 for xception"),
        ({"augmentation": {"hue": 0.1}}, "unknown augmentation keys: hue"),
        (
            {"augmentation": {"rotation": 400}},
            r"augmentation.rotation must be a number between 0 and 180",
        ),
        ({"weights": "model.h5"}, 'weights must be "imagenet", null or a .keras file path'),
        ({"mixed_precision": "yes"}, "mixed_precision must be true, false or null"),
        ({"lr_decay_at": "0.7"}, "lr_decay_at must be a list"),
        ({"epoch": 3}, "unknown training config keys: epoch"),
    ],
)
def test_a_config_explains_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig.from_dict(data)


def test_each_architecture_names_the_preprocessing_its_model_expects():
    assert TrainingConfig().preprocess_spec() == PreprocessSpec.xception(299)
    resnet = TrainingConfig(architecture="resnet50", image_size=224).preprocess_spec()
    assert (resnet.mode, resnet.mean_rgb) == ("caffe", (123.68, 116.779, 103.939))


def test_the_backbone_rate_defaults_to_a_tenth_of_the_head_rate_when_fine_tuning():
    config = TrainingConfig(learning_rate=1e-3)
    assert config.backbone_rate(pretrained=True) == pytest.approx(1e-4)
    assert config.backbone_rate(pretrained=False) == pytest.approx(1e-3)
    assert TrainingConfig(backbone_learning_rate=5e-5).backbone_rate(pretrained=True) == 5e-5
    steps = [TrainingConfig(epochs=10).learning_rate_at(e) for e in range(10)]
    assert steps[6] == pytest.approx(1e-3) and steps[7] == pytest.approx(1e-4)
    assert steps[9] == pytest.approx(1e-5)


def test_class_weights_are_the_number_of_photos_over_each_class_count():
    assert compute_class_weights([0, 0, 0, 1, 2, 2], 4) == {0: 2.0, 1: 6.0, 2: 3.0}


# -- model ---------------------------------------------------------------------------------


def test_the_model_ends_in_a_float32_softmax_over_the_classes():
    model = build_model(tiny_config(dropout=0.3), 5)
    assert tuple(model.inputs[0].shape) == (None, SIZE, SIZE, 3)
    assert tuple(model.outputs[0].shape) == (None, 5)
    head = model.get_layer("head_classes")
    assert head.activation.__name__ == "softmax" and head.dtype_policy.name == "float32"
    assert model.get_layer("head_dropout").rate == 0.3
    probs = model(np.zeros((2, SIZE, SIZE, 3), np.float32), training=False).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)


def test_imagenet_weights_without_a_local_file_fall_back_to_random_weights_with_a_warning(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    config = TrainingConfig(
        architecture="mobilenet_v3_small",
        image_size=32,
        weights="imagenet",
        imagenet_weights_path=str(tmp_path / "nowhere"),
    )
    with pytest.warns(UserWarning, match="ImageNet weights not used: no local ImageNet weights"):
        model = build_model(config, 3)
    assert tuple(model.outputs[0].shape) == (None, 3)


def test_a_base_model_keeps_its_head_for_the_same_classes_and_gets_a_new_one_otherwise(
    trained, tmp_path
):
    _, result, _, _ = trained
    same = build_model(tiny_config(weights=result.model_path), 3)
    base = KerasBackend.load(result.model_path).model
    for a, b in zip(same.get_weights(), base.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(
        UserWarning, match="base model has 3 classes, this run 4: its head is replaced"
    ):
        wider = build_model(tiny_config(weights=result.model_path), 4)
    assert tuple(wider.outputs[0].shape) == (None, 4)
    np.testing.assert_array_equal(
        wider.get_layer("small_cnn").get_weights()[0], base.get_layer("small_cnn").get_weights()[0]
    )
    with pytest.raises(ValueError, match="base model not found"):
        build_model(tiny_config(weights=str(tmp_path / "missing.keras")), 3)


def test_the_backbone_learns_at_its_own_rate():
    import keras

    inputs = keras.Input((4,))
    features = keras.layers.Dense(3, name="features")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax", name="head_classes")(features)
    model = keras.Model(inputs, outputs)
    config = tiny_config(learning_rate=1e-2, backbone_learning_rate=0.0)
    compile_model(model, config, head_layers=["head_classes"], pretrained=True)
    before = [v.numpy().copy() for v in model.trainable_variables]
    grads = [np.ones(v.shape, np.float32) for v in model.trainable_variables]
    model.optimizer.apply(grads, model.trainable_variables)
    after = {v.path: v.numpy() for v in model.trainable_variables}
    moved = {
        path
        for (path, value), old in zip(after.items(), before, strict=True)
        if not np.array_equal(value, old)
    }
    assert moved == {"head_classes/kernel", "head_classes/bias"}
    assert model.optimizer.backbone_multiplier == 0.0


# -- data ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory) -> Path:
    """A 4:3 JPEG larger than the target, rotated by EXIF, as phones write them."""
    image = rgb_image(400, 300, seed=5).resize((400, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    path.write_bytes(encode(image, "JPEG", quality=92, exif=exif.tobytes()))
    return path


@pytest.mark.parametrize(
    "spec",
    [
        PreprocessSpec.xception(SIZE),
        PreprocessSpec(
            image_size=48, mode="caffe", resize="squash", mean_rgb=(123.68, 116.779, 103.939)
        ),
    ],
)
def test_an_evaluation_array_is_the_serving_array_of_the_same_file(photo_file, spec):
    # Serving: Classifier.decode calls decode_image(data, target_size=spec.min_source_side(tta))
    # and predict_images calls preprocess([...], spec, tta).
    served = preprocess(
        [decode_image(photo_file.read_bytes(), target_size=spec.min_source_side("none"))], spec
    )[0]
    for source in (str(photo_file), photo_file.read_bytes(), photo_file.read_bytes):
        x, y = next(iter(make_dataset([(source, 2)], spec, batch_size=4, training=False)))
        assert x.shape == (1, spec.image_size, spec.image_size, 3) and y.numpy().tolist() == [2]
        np.testing.assert_array_equal(x.numpy()[0], served)


def test_training_arrays_without_augmentation_equal_the_evaluation_arrays(photos):
    samples = photos["train"][:5]
    spec = PreprocessSpec.xception(SIZE)
    evaluation = next(iter(make_dataset(samples, spec, batch_size=8, training=False)))[0].numpy()
    shuffled = next(iter(make_dataset(samples, spec, batch_size=8, training=True, seed=3)))[
        0
    ].numpy()
    assert sorted(a.tobytes() for a in shuffled) == sorted(a.tobytes() for a in evaluation)


def test_augmentation_varies_each_epoch_stays_in_range_and_repeats_with_the_seed(photos):
    samples = photos["train"][:4]
    spec = PreprocessSpec.xception(SIZE)
    strong = {
        "v_flip": 0.5,
        "rotation": 45,
        "zoom": 0.3,
        "brightness": 0.2,
        "contrast": 0.3,
        "saturation": 0.3,
    }

    def epochs(seed):
        dataset = make_dataset(
            samples, spec, batch_size=4, training=True, augmentation=strong, seed=seed
        )
        return [next(iter(dataset))[0].numpy() for _ in range(2)]

    first, second = epochs(1)
    again, _ = epochs(1)
    plain = next(iter(make_dataset(samples, spec, batch_size=4, training=False)))[0].numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
    assert first.min() >= -1 and first.max() <= 1 and first.dtype == np.float32
    plain_set = {a.tobytes() for a in plain}
    assert not any(a.tobytes() in plain_set for a in first)
    with pytest.raises(ValueError, match="augmentation applies to training datasets only"):
        make_dataset(samples, spec, batch_size=4, training=False, augmentation=strong)


def test_an_unreadable_photo_fails_the_run_naming_the_photo(photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    config = tiny_config(epochs=1)
    with pytest.raises(TrainingError, match=r"photo 7 \(.*broken\.jpg\) could not be read"):
        train(
            config,
            [*photos["train"][:7], (str(broken), 1)],
            [],
            config.preprocess_spec(),
            workdir=tmp_path / "run",
        )


def test_it_refuses_preprocessing_the_architecture_was_not_built_for(photos, tmp_path):
    config = tiny_config()
    with pytest.raises(ValueError, match="expects preprocessing mode 'xception'"):
        train(
            config,
            photos["train"],
            photos["val"],
            PreprocessSpec(image_size=SIZE, mode="unit"),
            workdir=tmp_path,
        )
    with pytest.raises(ValueError, match="gives 32 px images but image_size is 64"):
        train(config, photos["train"], photos["val"], PreprocessSpec.xception(32), workdir=tmp_path)


# -- the run -------------------------------------------------------------------------------


def test_a_small_cnn_learns_the_textures_well_above_chance_on_held_out_photos(trained, photos):
    config, result, _, _ = trained
    assert not result.cancelled and result.model_path.endswith("model.keras")
    classifier = Classifier(KerasBackend.load(result.model_path), config.preprocess_spec(), CLASSES)
    paths, labels = zip(*photos["test"], strict=True)
    evaluation = evaluate(classifier, paths, labels, config.preprocess_spec(), batch_size=16)
    assert evaluation.top1 > 0.8, evaluation.confusion
    assert result.history["val_accuracy"][result.best_epoch - 1] > 0.8
    assert result.class_weights == {0: 1.0, 1: 1.0, 2: 1.0}  # a balanced set


def test_the_saved_model_is_float32_without_optimizer_state(trained):
    import keras

    _, result, _, _ = trained
    model = keras.saving.load_model(result.model_path)
    assert {w.dtype for w in model.get_weights()} == {np.dtype("float32")}
    assert getattr(model, "optimizer", None) is None
    # A checkpoint carries Adam's two moments per weight besides the weights.
    checkpoint_size = Path(result.checkpoint_path).stat().st_size
    assert Path(result.model_path).stat().st_size < 0.6 * checkpoint_size


def test_it_reports_progress_every_n_steps_and_after_each_epoch(trained):
    config, result, events, _ = trained
    steps = 9  # 72 photos in batches of 8
    epoch_events = [e for e in events if e["event"] == "epoch"]
    step_events = [e for e in events if e["event"] == "step"]
    assert [e["epoch"] for e in epoch_events] == list(range(1, config.epochs + 1))
    assert [(e["epoch"], e["step"]) for e in step_events[:2]] == [(1, 4), (1, 8)]
    keys = {
        "epoch",
        "epochs",
        "step",
        "steps",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "images_per_second",
    }
    for event in events:
        assert keys <= set(event) and event["steps"] == steps and event["epochs"] == 8
        assert event["images_per_second"] > 0
    assert all(e["val_loss"] is not None for e in epoch_events)
    assert all(e["val_loss"] is None for e in step_events)
    assert [e["val_loss"] for e in epoch_events] == result.history["val_loss"]


def test_it_checkpoints_each_epoch_and_records_the_latest(trained):
    config, result, _, workdir = trained
    latest = json.loads((workdir / "latest.json").read_text())
    assert latest["epoch"] == result.epochs_completed == config.epochs
    assert latest["checkpoint"] == "checkpoint-epoch-08.keras"
    assert sorted(p.name for p in workdir.glob("checkpoint-epoch-*.keras")) == [
        "checkpoint-epoch-08.keras"
    ]
    assert (workdir / f"best-epoch-{result.best_epoch:02d}.weights.h5").is_file()
    assert latest_checkpoint(workdir).epoch == 8
    best = int(np.argmin(result.history["val_loss"])) + 1
    assert result.best_epoch == best
    assert len(result.history["lr"]) == 8 and result.history["lr"][-1] == pytest.approx(3e-5)


def test_a_cancelled_run_stops_at_once_and_a_resumed_run_continues_after_its_checkpoint(
    photos, tmp_path
):
    config = tiny_config(epochs=3, batch_size=12)
    spec = config.preprocess_spec()
    train_samples = photos["train"][::2]  # 36 photos: 3 full batches, no retracing
    events: list[dict] = []

    def stop_in_second_epoch():
        return any(e["event"] == "step" and e["epoch"] == 2 for e in events)

    first = train(
        config,
        train_samples,
        photos["val"],
        spec,
        workdir=tmp_path,
        on_progress=events.append,
        should_stop=stop_in_second_epoch,
        progress_every=1,
    )
    assert first.cancelled and first.model_path is None and not (tmp_path / "model.keras").exists()
    assert first.epochs_completed == 1 and len(first.history["loss"]) == 1
    assert events[-1] == {**events[-1], "event": "step", "epoch": 2, "step": 1}
    assert first.checkpoint_path == str(tmp_path / "checkpoint-epoch-01.keras")

    checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint.epoch == 1
    resumed_events: list[dict] = []
    second = train(
        config,
        train_samples,
        photos["val"],
        spec,
        workdir=tmp_path,
        on_progress=resumed_events.append,
        resume_from_checkpoint=checkpoint.path,
    )
    assert not second.cancelled and Path(second.model_path).is_file()
    assert [e["epoch"] for e in resumed_events if e["event"] == "epoch"] == [2, 3]
    assert second.epochs_completed == 3
    assert second.history["loss"][0] == first.history["loss"][0]
    assert len(second.history["val_loss"]) == 3
    assert latest_checkpoint(tmp_path).path == str(tmp_path / "checkpoint-epoch-03.keras")


def test_a_run_cancelled_before_it_starts_builds_nothing(photos, tmp_path):
    config = tiny_config()
    result = train(
        config,
        photos["train"],
        photos["val"],
        config.preprocess_spec(),
        workdir=tmp_path,
        should_stop=lambda: True,
    )
    assert result.cancelled and result.epochs_completed == 0 and result.model_path is None


def test_early_stopping_ends_the_run_and_keeps_the_best_epoch(photos, tmp_path):
    import keras

    # Validation labels that are all wrong: the better the model learns the textures, the
    # higher its validation loss, so the first epochs are the best.
    wrong = [(path, (label + 1) % 3) for path, label in photos["val"]]
    config = tiny_config(epochs=10, batch_size=12, early_stopping_patience=2)
    result = train(config, photos["train"][::2], wrong, config.preprocess_spec(), workdir=tmp_path)
    assert result.stopped_early
    assert result.epochs_completed == result.best_epoch + 2 < 10
    assert len(result.history["val_loss"]) == result.epochs_completed
    model = keras.saving.load_model(result.model_path)
    model.compile(loss="sparse_categorical_crossentropy")
    val = make_dataset(wrong, config.preprocess_spec(), batch_size=8, training=False)
    assert model.evaluate(val, verbose=0) == pytest.approx(
        result.history["val_loss"][result.best_epoch - 1], rel=1e-4
    )


def test_a_mixed_precision_run_resumes_with_its_optimizer_and_saves_a_float32_model(
    photos, tmp_path
):
    import keras

    # On a GPU mixed precision is the default; forced here, it runs (slowly) on the CPU too.
    config = tiny_config(epochs=2, batch_size=12, mixed_precision=True)
    spec = config.preprocess_spec()
    samples = photos["train"][::2]
    first = train(
        config,
        samples,
        photos["val"],
        spec,
        workdir=tmp_path,
        should_stop=lambda: latest_checkpoint(tmp_path) is not None,
    )
    assert first.cancelled and first.mixed_precision and first.epochs_completed == 1
    second = train(
        config, samples, photos["val"], spec, workdir=tmp_path, resume_from_checkpoint=tmp_path
    )
    assert second.epochs_completed == 2 and second.mixed_precision
    assert not any("could not be restored" in w for w in second.warnings), second.warnings
    checkpoint = keras.saving.load_model(second.checkpoint_path)
    assert isinstance(checkpoint.optimizer, keras.optimizers.LossScaleOptimizer)
    served = keras.saving.load_model(second.model_path)
    assert {layer.dtype_policy.name for layer in served._flatten_layers()} == {"float32"}
    assert latest_checkpoint(tmp_path / "elsewhere") is None


def test_efficientnet_from_a_local_imagenet_file_matches_keras_own_imagenet_model(
    tmp_path, monkeypatch
):
    import keras
    from keras.src.applications import efficientnet

    # A stand-in for efficientnetb0_notop.h5 with ImageNet's normalisation statistics.
    config = TrainingConfig(architecture="efficientnet_b0", image_size=32, weights=None)
    donor = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    norm = next(layer for layer in donor.layers if type(layer).__name__ == "Normalization")
    norm.adapt_mean.assign(np.array([0.485, 0.456, 0.406], np.float32))
    norm.adapt_variance.assign(np.array([0.229, 0.224, 0.225], np.float32) ** 2)
    path = tmp_path / "efficientnetb0.weights.h5"
    donor.save_weights(path)
    # Keras' weights="imagenet" code path, reading the same file instead of downloading.
    monkeypatch.setattr(efficientnet.file_utils, "get_file", lambda *args, **kwargs: str(path))
    reference = keras.applications.EfficientNetB0(
        include_top=False, weights="imagenet", input_shape=(32, 32, 3), pooling="avg"
    )
    config = TrainingConfig(
        architecture="efficientnet_b0", image_size=32, imagenet_weights_path=str(path)
    )
    model = build_model(config, 3)
    features = keras.Model(model.inputs[0], model.get_layer("head_dropout").input)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    expected = reference(pixels, training=False).numpy()
    # build_model's input is the spec's [-1, 1]; EfficientNet normalises from [0, 255] itself.
    got = features(pixels / 127.5 - 1, training=False).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_a_fresh_run_refuses_a_folder_holding_another_runs_checkpoints(trained, photos):
    config, _, _, workdir = trained
    with pytest.raises(ValueError, match="holds another run's checkpoints: resume it"):
        train(config, photos["train"], photos["val"], config.preprocess_spec(), workdir=workdir)
