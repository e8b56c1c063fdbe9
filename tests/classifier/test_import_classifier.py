"""`import_classifier` and the import services: Keras files, DEEP-OC model folders, ONNX."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from classifier.engine.preprocessing import PreprocessSpec, preprocess
from classifier.engine.weights import sha256_file
from classifier.models import ClassifierVersion
from classifier.services.importing import classifier_import_deepoc, classifier_import_keras
from classifier.services.registry import RegistryError, version_load
from observations.models import Taxon
from tests.classifier.engine.support import (
    DEEPOC_INFO,
    DEEPOC_MEAN,
    DEEPOC_SIZE,
    DEEPOC_TIMESTAMP,
    deepoc_conf,
    rgb_image,
    write_deepoc_model,
)
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db

KERAS_SIZE = 32
KERAS_LABELS = [
    "Buddleja_davidii",
    "Reynoutria japonica",
    "Ailanthus altissima",
    "Unidentified rosette",
]
# As image-classification-tf writes classes.txt: underscores; Impatiens is not in the database.
DEEPOC_LABELS = ["Ailanthus_altissima", "Impatiens_glandulifera", "Reynoutria_japonica"]
ONNX_SIZE = 8
ONNX_LABELS = ["Ailanthus altissima", "Buddleja davidii", "Reynoutria japonica"]


@pytest.fixture(autouse=True)
def _models_storage(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "models": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "models"), "base_url": None},
        },
    }


def stored_weights(tmp_path: Path) -> list[str]:
    return sorted(
        str(p.relative_to(tmp_path)) for p in (tmp_path / "models").rglob("*") if p.is_file()
    )


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_classifier", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture(scope="module")
def keras_model():
    """Keras 3: 32x32x3 -> quadrant colour means -> Dense(4, softmax)."""
    import keras

    keras.utils.set_random_seed(4)
    inputs = keras.Input((KERAS_SIZE, KERAS_SIZE, 3))
    x = keras.layers.AveragePooling2D(KERAS_SIZE // 2)(inputs)
    x = keras.layers.Flatten()(x)
    init = keras.initializers.RandomNormal(stddev=3.0, seed=5)
    outputs = keras.layers.Dense(len(KERAS_LABELS), activation="softmax", kernel_initializer=init)(
        x
    )
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def keras_file(keras_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keras") / "rosettes.keras"
    keras_model.save(path)
    return path


@pytest.fixture
def labels_file(tmp_path) -> Path:
    path = tmp_path / "labels.txt"
    # A blank line in the middle and a final newline are not labels.
    path.write_text("\n".join(KERAS_LABELS[:2]) + "\n\n" + "\n".join(KERAS_LABELS[2:]) + "\n")
    return path


@pytest.fixture(scope="module")
def deepoc_h5(tmp_path_factory) -> Path:
    """A Keras 2 model as image-classification-tf saves it: tf_keras, HDF5, no optimizer."""
    import tf_keras

    tf_keras.utils.set_random_seed(6)
    inputs = tf_keras.Input((DEEPOC_SIZE, DEEPOC_SIZE, 3))
    x = tf_keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    init = tf_keras.initializers.RandomNormal(stddev=2.0, seed=7)
    outputs = tf_keras.layers.Dense(
        len(DEEPOC_LABELS), activation="softmax", kernel_initializer=init
    )(x)
    path = tmp_path_factory.mktemp("deepoc-h5") / "final_model.h5"
    tf_keras.Model(inputs, outputs).save(path, include_optimizer=False)
    return path


@pytest.fixture(scope="module")
def deepoc_models(deepoc_h5, tmp_path_factory) -> dict[str, Path]:
    """One DEEP-OC model as a timestamped folder and as a .tar.xz of it."""
    base = tmp_path_factory.mktemp("deepoc")
    folder = write_deepoc_model(base / DEEPOC_TIMESTAMP, deepoc_h5)
    (folder / "dataset_files" / "classes.txt").write_text("".join(f"{c}\n" for c in DEEPOC_LABELS))
    archive = base / "invasoras.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(folder, arcname=DEEPOC_TIMESTAMP)
    return {"folder": folder, "tar.xz": archive}


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [rgb_image(48, 40, seed=20), rgb_image(30, 60, seed=21), rgb_image(64, 64, seed=22)]


# -- Keras ----------------------------------------------------------------------------------


def test_it_imports_a_keras_file_with_its_labels_and_predicts_like_the_model_in_memory(
    campaign, taxa, keras_model, keras_file, labels_file, photos
):
    output = run(str(keras_file), "--labels", str(labels_file), "--licence", "CC-BY-4.0")

    version = ClassifierVersion.objects.get()
    assert f"Registered classifier version {version.pk}: rosettes" in output
    assert version.weights_sha256 in output and "candidate" in output
    assert version.backend == "keras" and version.campaign == campaign
    assert version.state == ClassifierVersion.State.CANDIDATE
    assert version.licence == "CC-BY-4.0"
    # No preprocessing given: Xception scaling and centre crop at the model's own input size.
    assert version.input_size == KERAS_SIZE
    assert PreprocessSpec.from_dict(version.preprocessing) == PreprocessSpec.xception(KERAS_SIZE)
    by_name = {taxon.scientific_name: taxon for taxon in taxa}
    assert [(label.name, label.taxon) for label in version.labels.order_by("index")] == [
        ("Buddleja_davidii", by_name["Buddleja davidii"]),
        ("Reynoutria japonica", by_name["Reynoutria japonica"]),
        ("Ailanthus altissima", by_name["Ailanthus altissima"]),
        ("Unidentified rosette", None),  # a raw label: Keras imports create no taxa by default
    ]
    assert version.weights_sha256 == sha256_file(keras_file)
    assert sha256_file(version.weights.path) == version.weights_sha256

    classifier = version_load(version)
    x = preprocess(photos, PreprocessSpec.xception(KERAS_SIZE))
    expected = keras_model(x, training=False).numpy()
    np.testing.assert_allclose(classifier.predict_images(photos), expected, atol=1e-6)
    assert classifier.labels == KERAS_LABELS


def test_it_refuses_a_keras_model_whose_labels_file_has_another_count(
    campaign, keras_file, tmp_path
):
    labels = tmp_path / "labels.txt"
    labels.write_text("Buddleja davidii\nReynoutria japonica\n\nAilanthus altissima\n")

    with pytest.raises(CommandError, match="model outputs 4 classes but labels.txt has 3 lines"):
        run(str(keras_file), "--labels", str(labels))

    assert not ClassifierVersion.objects.exists()
    assert stored_weights(tmp_path) == []


def test_it_refuses_a_preprocessing_size_the_model_does_not_take(
    campaign, keras_file, labels_file, tmp_path
):
    spec = tmp_path / "preprocessing.json"
    spec.write_text(json.dumps({"image_size": 64, "mode": "xception", "resize": "squash"}))

    with pytest.raises(
        CommandError, match="expects 32x32 images but the preprocessing says image_size 64"
    ):
        run(str(keras_file), "--labels", str(labels_file), "--preprocessing", str(spec))

    assert not ClassifierVersion.objects.exists()
    assert stored_weights(tmp_path) == []


def test_it_refuses_a_file_that_is_not_a_keras_model(campaign, labels_file, tmp_path):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not really a keras archive")

    with pytest.raises(CommandError, match="Cannot load broken.keras as a keras model"):
        run(str(broken), "--labels", str(labels_file))

    assert not ClassifierVersion.objects.exists()
    assert stored_weights(tmp_path) == []


def test_it_asks_for_labels_with_a_keras_file(campaign, keras_file, tmp_path):
    with pytest.raises(CommandError, match="pass --labels FILE"):
        run(str(keras_file))

    assert not ClassifierVersion.objects.exists()
    assert stored_weights(tmp_path) == []


# -- DEEP-OC --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deepoc_expected(deepoc_h5, photos) -> np.ndarray:
    """What image-classification-tf computes: squash to 32x32, (x - mean_RGB) / 127.5, through
    the Keras 2 model loaded with tf_keras."""
    import tf_keras

    model = tf_keras.models.load_model(deepoc_h5, compile=False)
    size = (DEEPOC_SIZE, DEEPOC_SIZE)
    pixels = np.stack(
        [np.asarray(p.resize(size, Image.Resampling.BILINEAR), dtype=np.float64) for p in photos]
    )
    x = (pixels - np.array(DEEPOC_MEAN)) / 127.5
    return model(x.astype(np.float32), training=False).numpy()


@pytest.mark.parametrize("form", ["folder", "tar.xz"])
def test_it_imports_a_deepoc_model_and_predicts_like_loading_it_directly(
    form, campaign, taxa, deepoc_models, deepoc_expected, photos
):
    output = run(str(deepoc_models[form]), "--activate")

    version = ClassifierVersion.objects.get()
    assert version.backend == "deepoc" and version.architecture == "Xception"
    assert version.state == ClassifierVersion.State.ACTIVE
    assert version.weights.name.endswith(".h5") and "final_model" in version.weights.name
    assert version.weights_sha256 == sha256_file(
        deepoc_models["folder"] / "ckpts" / "final_model.h5"
    )
    assert version.input_size == DEEPOC_SIZE
    assert version.preprocessing == PreprocessSpec.from_deepoc_conf(deepoc_conf()).to_dict()
    assert version.preprocessing["mode"] == "tf" and version.preprocessing["resize"] == "squash"
    # Missing taxa are created from classes.txt, underscores read as spaces.
    labels = list(version.labels.select_related("taxon").order_by("index"))
    assert [label.name for label in labels] == DEEPOC_LABELS
    assert [label.taxon.scientific_name for label in labels] == [
        "Ailanthus altissima",
        "Impatiens glandulifera",
        "Reynoutria japonica",
    ]
    assert labels[0].taxon == next(t for t in taxa if t.scientific_name == "Ailanthus altissima")
    assert Taxon.objects.filter(scientific_name="Impatiens glandulifera").count() == 1
    assert "new taxa       1: Impatiens glandulifera" in output
    # Figures from stats.json, the rest in the model card.
    assert version.metrics["val_acc"] == pytest.approx(0.7)
    assert version.metrics["epochs"] == 2
    card = version.model_card
    assert card["conf"]["dataset"]["mean_RGB"] == DEEPOC_MEAN
    assert card["info"] == [line.strip() for line in DEEPOC_INFO]
    assert card["architecture"] == "Xception" and card["source_name"] == deepoc_models[form].name

    classifier = version_load(version)
    np.testing.assert_allclose(classifier.predict_images(photos), deepoc_expected, atol=1e-5)


def test_it_removes_the_folder_a_deepoc_archive_was_extracted_to(
    campaign, deepoc_models, tmp_path, monkeypatch
):
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))

    classifier_import_deepoc(path=deepoc_models["tar.xz"], campaign=campaign)

    assert ClassifierVersion.objects.count() == 1
    assert list((tmp_path / "tmp").iterdir()) == []


def test_it_refuses_a_folder_without_conf_json(campaign, deepoc_models, tmp_path):
    broken = tmp_path / "model"
    (broken / "ckpts").mkdir(parents=True)
    (broken / "ckpts" / "final_model.h5").write_bytes(
        (deepoc_models["folder"] / "ckpts" / "final_model.h5").read_bytes()
    )

    with pytest.raises(CommandError, match="missing conf/conf.json"):
        run(str(broken))

    assert not ClassifierVersion.objects.exists()
    assert stored_weights(tmp_path) == []


def test_it_refuses_a_folder_that_is_no_deepoc_model(campaign, tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(CommandError, match="no DEEP-OC model folder found"):
        run(str(tmp_path / "photos"))
    assert not ClassifierVersion.objects.exists()


def test_it_refuses_a_deepoc_model_whose_classes_do_not_match_its_outputs(
    campaign, deepoc_models, tmp_path
):
    folder = Path(shutil.copytree(deepoc_models["folder"], tmp_path / "copy"))
    (folder / "dataset_files" / "classes.txt").write_text("A_b\nC_d\n")
    conf = deepoc_conf(num_classes=None)
    (folder / "conf" / "conf.json").write_text(json.dumps(conf))

    with pytest.raises(
        RegistryError, match="outputs 3 classes but dataset_files/classes.txt lists 2"
    ) as caught:
        classifier_import_deepoc(path=folder, campaign=campaign)

    assert caught.value.code == "deepoc_invalid"
    assert not ClassifierVersion.objects.exists()
    assert not Taxon.objects.filter(scientific_name__in=["A b", "C d"]).exists()
    assert stored_weights(tmp_path) == []


# -- ONNX -----------------------------------------------------------------------------------


def onnx_file(
    path: Path, *, classes: int = len(ONNX_LABELS)
) -> tuple[Path, np.ndarray, np.ndarray]:
    """NHWC input -> global average pool -> MatMul + Add -> Softmax, built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(8)
    weights = rng.normal(0, 3, size=(3, classes)).astype(np.float32)
    bias = rng.normal(0, 0.5, size=(classes,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2]),
            helper.make_node("GlobalAveragePool", ["nchw"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "tiny_plankton",
        [
            helper.make_tensor_value_info(
                "images", TensorProto.FLOAT, ["N", ONNX_SIZE, ONNX_SIZE, 3]
            )
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes])],
        initializer=[
            helper.make_tensor("W", TensorProto.FLOAT, weights.shape, weights.flatten()),
            helper.make_tensor("B", TensorProto.FLOAT, bias.shape, bias),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path, weights, bias


def test_it_imports_an_onnx_model_with_a_preprocessing_json_and_activates_it(
    campaign, taxa, tmp_path, photos
):
    path, weights, bias = onnx_file(tmp_path / "plankton.onnx")
    preprocessing = tmp_path / "plankton.json"
    preprocessing.write_text(
        json.dumps(
            {"image_size": ONNX_SIZE, "mode": "unit", "resize": "squash", "labels": ONNX_LABELS}
        )
    )

    output = run(
        str(path), "--preprocessing", str(preprocessing), "--activate", "--name", "Plankton"
    )

    version = ClassifierVersion.objects.get()
    assert "state          active" in output
    assert version.name == "Plankton" and version.backend == "onnx"
    assert version.state == ClassifierVersion.State.ACTIVE
    assert version.preprocessing["mode"] == "unit" and version.input_size == ONNX_SIZE
    assert [label.name for label in version.labels.order_by("index")] == ONNX_LABELS
    assert all(label.taxon_id for label in version.labels.all())

    spec = PreprocessSpec(ONNX_SIZE, "unit", "squash")
    logits = preprocess(photos, spec).astype(np.float64).mean(axis=(1, 2)) @ weights + bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(version_load(version).predict_images(photos), expected, atol=1e-5)


def test_it_refuses_an_onnx_model_whose_labels_do_not_match(campaign, tmp_path):
    path, _, _ = onnx_file(tmp_path / "plankton.onnx", classes=4)
    preprocessing = tmp_path / "plankton.json"
    preprocessing.write_text(json.dumps({"image_size": ONNX_SIZE, "mode": "unit"}))
    labels = tmp_path / "classes.txt"
    labels.write_text("\n".join(ONNX_LABELS))

    with pytest.raises(CommandError, match="model outputs 4 classes but classes.txt has 3 lines"):
        run(str(path), "--preprocessing", str(preprocessing), "--labels", str(labels))

    assert not ClassifierVersion.objects.exists()
    assert stored_weights(tmp_path) == []


def test_it_asks_for_a_preprocessing_file_with_an_onnx_model(campaign, tmp_path):
    path, _, _ = onnx_file(tmp_path / "plankton.onnx")
    with pytest.raises(CommandError, match="pass --preprocessing FILE.json"):
        run(str(path))
    assert not ClassifierVersion.objects.exists()


# -- errors any import can meet ---------------------------------------------------------------


def test_it_reports_a_missing_file(campaign, labels_file, tmp_path):
    with pytest.raises(CommandError, match="No such file or folder: .*nowhere.keras"):
        run(str(tmp_path / "nowhere.keras"), "--labels", str(labels_file))
    assert not ClassifierVersion.objects.exists()


def test_it_reports_an_unknown_campaign(campaign, keras_file, labels_file, tmp_path):
    with pytest.raises(CommandError, match="Unknown campaign 'conus'. Campaigns: ordesa-invasives"):
        run(str(keras_file), "--labels", str(labels_file), "--campaign", "conus")
    assert not ClassifierVersion.objects.exists()
    assert stored_weights(tmp_path) == []


def test_it_imports_into_the_campaign_it_is_given(campaign, keras_file, labels_file):
    conus = CampaignFactory(slug="conus", name="Conus of the Western Atlantic")

    run(str(keras_file), "--labels", str(labels_file), "--campaign", "conus", "--tta", "flip")

    version = ClassifierVersion.objects.get()
    assert version.campaign == conus and version.tta == "flip"


def test_a_failing_import_exits_with_status_1_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "import_classifier", str(tmp_path / "nowhere.keras")],
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 1
    assert "No such file or folder" in result.stderr
    assert "Traceback" not in result.stderr


# -- integrity --------------------------------------------------------------------------------


def test_it_refuses_to_load_weights_changed_after_import(
    campaign, keras_file, labels_file, tmp_path
):
    version = classifier_import_keras(path=keras_file, labels_path=labels_file, campaign=campaign)
    with open(version.weights.path, "ab") as handle:
        handle.write(b"tampered")

    with pytest.raises(RegistryError) as caught:
        version_load(version)

    assert caught.value.code == "weights_sha256_mismatch"
    assert "do not match the recorded sha256" in caught.value.detail
