import numpy as np
import pytest

from classifier.engine.backends.base import Backend
from classifier.engine.inference import (
    Classifier,
    ModelCache,
    apply_temperature,
    entropy,
    merge,
    renormalise,
    top_k,
)
from classifier.engine.preprocessing import PreprocessSpec, preprocess

from .support import encode, rgb_image

SPEC = PreprocessSpec(8, mode="unit", resize="squash")
LABELS = ["red", "green", "blue"]


class MeanColourBackend(Backend):
    """Probabilities from each view's mean colour: fast, deterministic, view-sensitive."""

    kind = "fake"

    def __init__(self):
        self.calls: list[int] = []
        self.closed = False

    @property
    def num_classes(self):
        return 3

    @property
    def input_size(self):
        return (8, 8)

    def predict(self, batch):
        self.calls.append(len(batch))
        # Weight the left half more, so a mirrored view gives a different answer.
        weights = np.linspace(2.0, 0.0, batch.shape[2])[None, None, :, None]
        logits = 8 * (batch * weights).mean(axis=(1, 2))
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def close(self):
        self.closed = True


@pytest.fixture
def photos():
    return [rgb_image(20 + i, 16, seed=i) for i in range(7)]


def test_it_averages_each_images_views(photos):
    backend = MeanColourBackend()
    probs = Classifier(backend, SPEC, LABELS, tta="flip").predict_images(photos[:2])
    views = backend.predict(preprocess(photos[:2], SPEC, "flip"))
    np.testing.assert_allclose(probs, views.reshape(2, 2, 3).mean(axis=1), atol=1e-6)
    assert not np.allclose(views[0], views[1]), "the mirror is a different view"


def test_an_image_gets_the_same_answer_alone_or_in_a_batch(photos):
    classifier = Classifier(MeanColourBackend(), SPEC, LABELS, tta="ten-crop")
    together = classifier.predict_images(photos)
    alone = np.concatenate([classifier.predict_images([p]) for p in photos])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(together.sum(axis=1), 1, atol=1e-6)


def test_it_runs_whole_images_in_forward_passes_of_at_most_max_batch_size(photos):
    backend = MeanColourBackend()
    Classifier(backend, SPEC, LABELS, tta="flip", max_batch_size=5).predict_images(photos)
    assert backend.calls == [4, 4, 4, 2]  # two photos (four views) per pass, never split


def test_it_decodes_and_classifies_uploaded_bytes(photos):
    classifier = Classifier(MeanColourBackend(), SPEC, LABELS)
    from_bytes = classifier.predict_sources([encode(photos[0], "PNG")])
    np.testing.assert_allclose(from_bytes, classifier.predict_images(photos[:1]), atol=1e-6)
    assert classifier.labelled_top_k(from_bytes[0], k=1)[0][0] in LABELS


def test_it_calibrates_with_its_temperature(photos):
    plain = Classifier(MeanColourBackend(), SPEC, LABELS).predict_images(photos)
    calibrated = Classifier(MeanColourBackend(), SPEC, LABELS, temperature=2.0).predict_images(
        photos
    )
    np.testing.assert_allclose(calibrated, apply_temperature(plain, 2.0), atol=1e-6)
    assert (entropy(calibrated) > entropy(plain)).all(), "T > 1 softens"
    np.testing.assert_array_equal(calibrated.argmax(axis=1), plain.argmax(axis=1))


def test_it_refuses_labels_or_sizes_that_do_not_fit_the_model():
    with pytest.raises(ValueError, match="outputs 3 classes but 2 labels"):
        Classifier(MeanColourBackend(), SPEC, ["a", "b"])
    with pytest.raises(ValueError, match="expects 8x8 images but .* produces 16x16"):
        Classifier(MeanColourBackend(), PreprocessSpec.xception(16), LABELS)
    with pytest.raises(ValueError, match="tta must be one of"):
        Classifier(MeanColourBackend(), SPEC, LABELS, tta="random")


def test_temperature_scaling_matches_dividing_the_logits():
    logits = np.array([[2.0, 1.0, -1.0], [0.5, 0.5, 3.0]])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scaled = np.exp(logits / 1.7) / np.exp(logits / 1.7).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(apply_temperature(probs, 1.7), scaled, atol=1e-6)
    np.testing.assert_allclose(apply_temperature(probs, None), probs, atol=1e-7)
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(probs, 0)


def test_top_k_lists_the_most_probable_classes_first():
    p = np.array([0.1, 0.4, 0.1, 0.3, 0.1])
    assert top_k(p, k=3) == [(1, 0.4), (3, 0.3), (0, 0.1)]  # ties: lower index first
    assert [i for i, _ in top_k(p, k=10)] == [1, 3, 0, 2, 4]


def test_merge_averages_the_photos_of_an_observation():
    np.testing.assert_allclose(merge([[0.8, 0.2, 0.0], [0.2, 0.4, 0.4]]), [0.5, 0.3, 0.2])


def test_entropy_is_zero_when_certain_and_log_classes_when_uniform():
    assert entropy(np.array([1.0, 0.0, 0.0])) == 0.0
    assert entropy(np.full(4, 0.25)) == pytest.approx(np.log(4))
    assert entropy(np.full(4, 0.25), normalised=True) == pytest.approx(1.0)
    np.testing.assert_allclose(entropy(np.array([[1.0, 0.0], [0.5, 0.5]])), [0.0, np.log(2)])


def test_renormalise_keeps_only_the_listed_classes():
    p = np.array([[0.5, 0.3, 0.2, 0.0], [0.9, 0.1, 0.0, 0.0]])
    out = renormalise(p, [1, 2])
    np.testing.assert_allclose(out[0], [0.0, 0.6, 0.4, 0.0], atol=1e-6)
    np.testing.assert_allclose(out[1], [0.0, 1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(renormalise(p[1], [2, 3]), [0.0, 0.0, 0.5, 0.5])  # no mass
    with pytest.raises(ValueError, match="within 0..3"):
        renormalise(p, [4])


def test_model_cache_loads_each_key_once_and_closes_what_it_evicts():
    cache = ModelCache(maxsize=2)
    loads = []

    def loader(name):
        def load():
            loads.append(name)
            return MeanColourBackend()

        return load

    v1 = cache.get((1, "aa"), loader("v1"))
    assert cache.get((1, "aa"), loader("v1")) is v1
    v2 = cache.get((2, "bb"), loader("v2"))
    cache.get((1, "aa"), loader("v1"))  # v1 is now the most recently used
    cache.get((3, "cc"), loader("v3"))
    assert loads == ["v1", "v2", "v3"]
    assert v2.closed and not v1.closed
    assert cache.keys() == [(1, "aa"), (3, "cc")]
    cache.clear()
    assert v1.closed and len(cache) == 0
