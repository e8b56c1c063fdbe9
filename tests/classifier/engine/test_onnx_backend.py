import numpy as np
import pytest

from classifier.engine.backends import BackendLoadError, load_backend
from classifier.engine.backends.onnx import OnnxBackend

onnx = pytest.importorskip("onnx")
helper = onnx.helper
TensorProto = onnx.TensorProto

CLASSES = 3
RNG = np.random.default_rng(0)
W = RNG.normal(size=(3, CLASSES)).astype(np.float32) * 3
B = RNG.normal(size=(CLASSES,)).astype(np.float32)


def build(path, *, layout: str, softmax: bool, batch: int | str = "N", size: int = 8):
    """Global average pool + MatMul (+ Softmax), NHWC or NCHW input."""
    nodes = []
    if layout == "NHWC":
        shape = [batch, size, size, 3]
        nodes.append(helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2]))
        pooled_from = "nchw"
    else:
        shape = [batch, 3, size, size]
        pooled_from = "images"
    nodes += [
        helper.make_node("GlobalAveragePool", [pooled_from], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
    ]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=-1))
        out = "probs"
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, CLASSES])],
        initializer=[
            helper.make_tensor("W", TensorProto.FLOAT, W.shape, W.flatten()),
            helper.make_tensor("B", TensorProto.FLOAT, B.shape, B),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def reference(x: np.ndarray) -> np.ndarray:
    logits = x.astype(np.float64).mean(axis=(1, 2)) @ W + B
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(1).uniform(0, 1, size=(5, 8, 8, 3)).astype(np.float32)


def test_it_runs_an_nhwc_softmax_model_like_numpy(tmp_path, batch):
    backend = OnnxBackend.load(build(tmp_path / "m.onnx", layout="NHWC", softmax=True))
    assert (backend.layout, backend.num_classes, backend.input_size) == ("NHWC", 3, (8, 8))
    assert "CPUExecutionProvider" in backend.providers
    np.testing.assert_allclose(backend.predict(batch), reference(batch), atol=1e-5)


def test_it_feeds_an_nchw_model_and_softmaxes_its_logits(tmp_path, batch):
    backend = OnnxBackend.load(build(tmp_path / "m.onnx", layout="NCHW", softmax=False))
    assert backend.layout == "NCHW"
    probs = backend.predict(batch)  # NHWC in, as from preprocess()
    np.testing.assert_allclose(probs, reference(batch), atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)


def test_it_chunks_batches_for_a_model_exported_with_batch_size_one(tmp_path, batch):
    backend = OnnxBackend.load(build(tmp_path / "m.onnx", layout="NCHW", softmax=True, batch=1))
    np.testing.assert_allclose(backend.predict(batch), reference(batch), atol=1e-5)


def test_it_refuses_the_wrong_image_size_and_unreadable_files(tmp_path):
    backend = OnnxBackend.load(build(tmp_path / "m.onnx", layout="NHWC", softmax=True))
    with pytest.raises(ValueError, match="expects 8x8 images"):
        backend.predict(np.zeros((1, 16, 16, 3), dtype=np.float32))
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    with pytest.raises(BackendLoadError, match="could not load bad.onnx"):
        load_backend("onnx", tmp_path / "bad.onnx")
