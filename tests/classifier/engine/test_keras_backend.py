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
