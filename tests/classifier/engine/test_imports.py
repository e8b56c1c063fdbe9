import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

SCRIPT = """
import json, sys
import classifier.engine
import classifier.engine.backends
import classifier.engine.backends.deepoc
import classifier.engine.backends.keras
import classifier.engine.backends.onnx
import classifier.engine.deepoc_format
import classifier.engine.inference
import classifier.engine.preprocessing
import classifier.engine.weights
heavy = sorted(
    m for m in ("tensorflow", "keras", "tf_keras", "onnxruntime", "h5py", "django", "celery")
    if m in sys.modules
)
from classifier.engine.inference import configure_tensorflow
applied = configure_tensorflow(intra_op_threads=1, inter_op_threads=1)
import tensorflow as tf
print(json.dumps({
    "heavy": heavy,
    "applied": applied,
    "intra": tf.config.threading.get_intra_op_parallelism_threads(),
    "inter": tf.config.threading.get_inter_op_parallelism_threads(),
}))
"""


@pytest.fixture(scope="module")
def fresh_process():
    """Import the whole engine, then configure TensorFlow, in a new interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_engine_loads_no_ml_framework_and_no_django(fresh_process):
    assert fresh_process["heavy"] == []


def test_configure_tensorflow_sets_thread_pools_before_the_first_op(fresh_process):
    assert fresh_process["applied"]["intra_op_threads"] == 1
    assert fresh_process["applied"]["inter_op_threads"] == 1
    assert (fresh_process["intra"], fresh_process["inter"]) == (1, 1)
