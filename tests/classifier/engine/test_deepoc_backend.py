import numpy as np
import pytest
from PIL import Image

from classifier.engine.backends import load_backend
from classifier.engine.backends.deepoc import DeepOCBackend
from classifier.engine.inference import Classifier
from classifier.engine.preprocessing import PreprocessSpec

from .support import DEEPOC_CLASSES, DEEPOC_MEAN, rgb_image


@pytest.fixture(scope="module")
def photos():
    return [rgb_image(48, 40, seed=10), rgb_image(30, 60, seed=11), rgb_image(32, 32, seed=12)]


@pytest.fixture(scope="module")
def expected(tf_keras_h5, photos):
    """What image-classification-tf computes: squash to 32x32, (x - mean_RGB) / 127.5,
    through the Keras 2 model loaded with tf_keras."""
    import tf_keras

    model = tf_keras.models.load_model(tf_keras_h5, compile=False)
    pixels = np.stack(
        [
            np.asarray(p.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float64)
            for p in photos
        ]
    )
    x = (pixels - np.array(DEEPOC_MEAN)) / 127.5
    return model(x.astype(np.float32), training=False).numpy()


@pytest.mark.parametrize("form", ["folder", "tar.gz", "tar.xz"])
def test_it_predicts_what_the_original_model_predicts(form, deepoc_models, photos, expected):
    classifier = Classifier.from_deepoc(deepoc_models[form])
    assert classifier.labels == DEEPOC_CLASSES
    probs = classifier.predict_images(photos)
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_serving_it_with_keras_xception_scaling_instead_gives_other_probabilities(
    deepoc_models, photos, expected
):
    # The reason the spec travels with the model: the same weights, preprocessed the Keras way
    # (x / 127.5 - 1) rather than DEEP-OC's (x - mean_RGB) / 127.5, answer differently.
    backend = DeepOCBackend.load(deepoc_models["folder"])
    wrong = Classifier(backend, PreprocessSpec(32, "xception", "squash"), backend.labels)
    assert np.abs(wrong.predict_images(photos) - expected).max() > 1e-3


def test_it_keeps_labels_and_spec_and_removes_extracted_files(deepoc_models):
    backend = load_backend("deepoc", deepoc_models["tar.gz"])
    assert isinstance(backend, DeepOCBackend)
    assert backend.labels == DEEPOC_CLASSES
    assert backend.spec.mode == "tf" and backend.spec.resize == "squash"
    assert backend.num_classes == 3 and backend.input_size == (32, 32)
    assert backend.deepoc.temp_dir is None
    assert not backend.deepoc.root.exists()
