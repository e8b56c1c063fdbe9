import numpy as np
import pytest

from classifier.engine.backends import BackendLoadError, load_backend
from classifier.engine.backends import keras as keras_backend_module
from classifier.engine.backends.keras import KerasBackend, detect_output_kind


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(0).uniform(-1, 1, size=(5, 32, 32, 3)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_it_serves_a_saved_model_with_the_in_memory_model_probabilities(
    fmt, keras_files, keras_model, batch
):
    backend = KerasBackend.load(keras_files[fmt])
    expected = keras_model(batch, training=False).numpy()
    probs = backend.predict(batch)
    assert probs.shape == (5, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert (backend.num_classes, backend.input_size, backend.loaded_with) == (3, (32, 32), "keras")
    assert backend.output_kind == "probabilities"
    assert not np.allclose(probs, 1 / 3, atol=0.05), "the test model is not trivially uniform"


def test_it_traces_the_serving_function_once_for_any_batch_size(keras_files, batch):
    backend = KerasBackend.load(keras_files["keras"])
    for n in (1, 2, 5, 3):
        assert backend.predict(batch[:n]).shape == (n, 3)
    assert backend.tracing_count == 1


def test_it_applies_softmax_to_a_model_that_outputs_logits(keras_logits_model):
    x = np.random.default_rng(1).uniform(-1, 1, size=(4, 16, 16, 3)).astype(np.float32)
    backend = KerasBackend(keras_logits_model)
    assert backend.output_kind == "logits"
    logits = keras_logits_model(x).numpy().astype(np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = backend.predict(x)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)


def test_output_detection_reads_the_output_layer(keras_model, keras_logits_model):
    import keras

    inputs = keras.Input((8,))
    softmax_layer = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Dense(3)(inputs)))
    sigmoid = keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(inputs))
    assert detect_output_kind(keras_model) == "probabilities"
    assert detect_output_kind(keras_logits_model) == "logits"
    assert detect_output_kind(softmax_layer) == "probabilities"
    assert detect_output_kind(sigmoid) == "auto"


def test_it_refuses_a_batch_of_the_wrong_image_size(keras_files):
    backend = KerasBackend.load(keras_files["keras"])
    with pytest.raises(ValueError, match="expects 32x32 images, got 16x16"):
        backend.predict(np.zeros((1, 16, 16, 3), dtype=np.float32))


def test_it_falls_back_to_tf_keras_for_a_legacy_file_keras_3_cannot_read(monkeypatch, tf_keras_h5):
    def keras3_fails(*args):
        raise ValueError("unknown layer")

    monkeypatch.setattr(keras_backend_module, "_load_keras3", keras3_fails)
    backend = KerasBackend.load(tf_keras_h5)
    assert backend.loaded_with == "tf_keras"
    assert backend.predict(np.zeros((2, 32, 32, 3), dtype=np.float32)).shape == (2, 3)


def test_it_explains_why_a_file_cannot_be_loaded(tmp_path):
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(BackendLoadError, match=r"could not load broken.h5: keras: .* tf_keras: "):
        KerasBackend.load(bad)
    with pytest.raises(BackendLoadError, match="not found"):
        KerasBackend.load(tmp_path / "missing.keras")
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(BackendLoadError, match="expected a .keras"):
        KerasBackend.load(tmp_path / "model.pt")


def test_load_backend_picks_the_backend_by_kind(keras_files):
    backend = load_backend("keras", keras_files["keras"])
    assert isinstance(backend, KerasBackend)
    with pytest.raises(ValueError, match="unknown backend 'torch'"):
        load_backend("torch", keras_files["keras"])


def test_a_closed_backend_refuses_to_predict(keras_files, batch):
    with KerasBackend.load(keras_files["keras"]) as backend:
        backend.predict(batch[:1])
    with pytest.raises(RuntimeError, match="closed"):
        backend.predict(batch[:1])


@pytest.fixture(scope="module")
def nested_bn_model():
    """Conv + batch norm inside a nested model (as Xception sits inside DEEP-OC's), then a head."""
    import keras

    keras.utils.set_random_seed(4)
    inner_in = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inner_in)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.SeparableConv2D(8, 3, activation="relu")(x)
    inner = keras.Model(inner_in, keras.layers.GlobalAveragePooling2D()(x), name="base")
    inputs = keras.Input((32, 32, 3))
    init = keras.initializers.RandomNormal(stddev=1.0, seed=5)
    outputs = keras.layers.Dense(4, activation="softmax", kernel_initializer=init)(inner(inputs))
    model = keras.Model(inputs, outputs)
    # Moving statistics away from their initial values, as a trained model's are.
    bn = inner.get_layer(index=2)
    bn.moving_mean.assign(np.full(8, 0.1, np.float32))
    bn.moving_variance.assign(np.full(8, 2.0, np.float32))
    return model


def _policies(model) -> dict[str, str]:
    out = {}
    for layer in model.layers:
        if hasattr(layer, "layers"):
            out.update({f"{layer.name}/{k}": v for k, v in _policies(layer).items()})
        elif type(layer).__name__ != "InputLayer":
            out[layer.name] = layer.dtype_policy.name
    return out


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_float32_model_can_be_served_in_mixed_precision(nested_bn_model, policy, batch):
    reference = KerasBackend(nested_bn_model).predict(batch)
    backend = KerasBackend(nested_bn_model, compute_dtype=policy)
    probs = backend.predict(batch)

    assert backend.compute_dtype == policy
    served = _policies(backend.model)
    output_layer = backend.model.layers[-1].name
    assert served.pop(output_layer) == "float32", "the softmax stays in float32"
    assert set(served.values()) == {policy}, served  # nested layers included
    # Same weights, float32 variables; the original model is left as it was.
    for kept, original in zip(backend.model.weights, nested_bn_model.weights, strict=True):
        assert kept.dtype == "float32"
        np.testing.assert_array_equal(np.asarray(kept), np.asarray(original))
    assert set(_policies(nested_bn_model).values()) == {"float32"}
    # Only 16-bit rounding of the activations: close probabilities, the same ranking.
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(probs, reference, atol=0.03)
    assert (probs.argmax(axis=1) == reference.argmax(axis=1)).all()
    assert not np.array_equal(probs, reference), "the model really computed in 16 bits"


def test_mixed_precision_survives_save_and_load(keras_files, keras_model, batch):
    backend = KerasBackend.load(keras_files["keras"], compute_dtype="mixed_bfloat16")
    assert backend.compute_dtype == "mixed_bfloat16"
    np.testing.assert_allclose(
        backend.predict(batch), keras_model(batch, training=False).numpy(), atol=0.03
    )


def test_a_model_only_tf_keras_loads_is_served_as_saved(keras_model):
    with pytest.warns(UserWarning, match="served in float32"):
        backend = KerasBackend(keras_model, loaded_with="tf_keras", compute_dtype="mixed_bfloat16")
    assert backend.compute_dtype == "float32"


def test_auto_compute_dtype_follows_the_hardware():
    from classifier.engine.backends.keras import cpu_has_bf16, resolve_compute_dtype

    # No GPU on the test machines: bfloat16 where the CPU has bfloat16 units, else float32.
    assert resolve_compute_dtype("auto") == ("mixed_bfloat16" if cpu_has_bf16() else "float32")
    assert resolve_compute_dtype("mixed_float16") == "mixed_float16"
    with pytest.raises(ValueError, match="unknown compute dtype 'float16'"):
        resolve_compute_dtype("float16")
