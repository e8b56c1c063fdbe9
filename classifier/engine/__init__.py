"""ParkWatch's ML engine: preprocessing, model backends, inference, DEEP-OC formats.

Plain Python, numpy and Pillow at import time. TensorFlow, Keras and ONNX Runtime are imported
only inside the functions that load or run a model, so a Celery parent process can import this
package before it forks. No Django here (an import-linter contract checks it).
"""

import os as _os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) drowns worker logs; warnings stay.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
