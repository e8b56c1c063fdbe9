import json
import math

import numpy as np
import pytest

from classifier.engine.backends.keras import KerasBackend
from classifier.engine.evaluation import (
    Evaluation,
    compare,
    evaluate,
    evaluation_from_probabilities,
    expected_calibration_error,
    fit_temperature,
    nll,
    predict_probabilities,
)
from classifier.engine.inference import Classifier, apply_temperature
from classifier.engine.preprocessing import PreprocessSpec

from .support import encode, rgb_image

LABELS = ["Ailanthus altissima", "Buddleja davidii", "Reynoutria japonica"]


def one_hot(predicted, classes=3, confidence=0.9):
    """Probabilities whose argmax is `predicted`, the rest spread evenly."""
    p = np.full((len(predicted), classes), (1 - confidence) / (classes - 1))
    p[np.arange(len(predicted)), predicted] = confidence
    return p


def evaluation_with(confusion, labels=LABELS):
    """An Evaluation whose top-1 confusion matrix is exactly `confusion`."""
    truth, predicted = [], []
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            truth += [i] * count
            predicted += [j] * count
    return evaluation_from_probabilities(one_hot(predicted, len(labels)), truth, label_names=labels)


# -- metrics -------------------------------------------------------------------------------


def test_metrics_of_a_known_confusion_matrix():
    evaluation = evaluation_with([[3, 1, 0], [0, 2, 2], [1, 0, 3]])
    assert evaluation.confusion == [[3, 1, 0], [0, 2, 2], [1, 0, 3]]
    assert evaluation.n == 12 and evaluation.top1 == pytest.approx(8 / 12)
    # precision = tp / column sum, recall = tp / row sum
    expected = [(3 / 4, 3 / 4, 3 / 4), (2 / 3, 2 / 4, 4 / 7), (3 / 5, 3 / 4, 2 / 3)]
    for metric, (precision, recall, f1) in zip(evaluation.per_class, expected, strict=True):
        assert (metric.precision, metric.recall, metric.f1) == pytest.approx(
            (precision, recall, f1)
        )
        assert metric.support == 4
    assert evaluation.macro_f1 == pytest.approx((3 / 4 + 4 / 7 + 2 / 3) / 3)
    assert evaluation.macro_recall == pytest.approx((3 / 4 + 1 / 2 + 3 / 4) / 3)
    assert evaluation.for_label("Buddleja davidii").recall == pytest.approx(0.5)
    assert evaluation.top5 == 1.0  # three classes: top-3 always contains the truth


def test_top5_counts_the_true_class_among_the_five_most_probable():
    classes = 8
    probs = np.tile(np.linspace(0.2, 0.05, classes), (2, 1))
    probs /= probs.sum(axis=1, keepdims=True)
    # The truth is ranked 3rd in the first photo and 7th in the second.
    evaluation = evaluation_from_probabilities(probs, [2, 6])
    assert (evaluation.top1, evaluation.top5) == (0.0, 0.5)


def test_classes_without_test_photos_stay_out_of_the_macro_averages():
    evaluation = evaluation_with([[4, 0, 0], [0, 0, 0], [0, 1, 3]])
    assert evaluation.per_class[1].support == 0
    assert evaluation.macro_recall == pytest.approx((1 + 3 / 4) / 2)
    assert evaluation.macro_f1 == pytest.approx((1 + 2 * 1 * 0.75 / 1.75) / 2)


def test_an_evaluation_round_trips_through_json():
    evaluation = evaluation_with([[3, 1, 0], [0, 2, 2], [1, 0, 3]])
    data = json.loads(json.dumps(evaluation.to_dict(), allow_nan=False))
    assert Evaluation.from_dict(data) == evaluation
    with pytest.raises(ValueError, match="missing top1"):
        Evaluation.from_dict({k: v for k, v in data.items() if k != "top1"})
    with pytest.raises(ValueError, match="expected 3 classes throughout"):
        Evaluation.from_dict({**data, "confusion": data["confusion"][:2]})


def test_nll_and_calibration_error_of_confident_predictions():
    right = one_hot([0, 1, 2], confidence=1.0)
    assert nll(right, [0, 1, 2]) == pytest.approx(0, abs=1e-9)
    assert expected_calibration_error(right, [0, 1, 2]) == pytest.approx(0)
    # Always 90 % sure, right half of the time: 40 points over-confident.
    half = one_hot([0, 1, 0, 1], confidence=0.9)
    assert expected_calibration_error(half, [0, 1, 1, 0]) == pytest.approx(0.4)


def test_it_rejects_labels_that_do_not_fit_the_predictions():
    with pytest.raises(ValueError, match="expected 2 labels"):
        evaluation_from_probabilities(one_hot([0, 1]), [0])
    with pytest.raises(ValueError, match="within 0..2"):
        evaluation_from_probabilities(one_hot([0, 1]), [0, 3])
    with pytest.raises(ValueError, match="no photos to evaluate"):
        evaluation_from_probabilities(np.zeros((0, 3)), [])


# -- evaluating a model on photos ----------------------------------------------------------


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i in range(5):
        path = folder / f"{i}.jpg"
        path.write_bytes(encode(rgb_image(60 + 7 * i, 48, seed=i), "JPEG", quality=90))
        paths.append(str(path))
    return paths


def test_every_kind_of_model_is_evaluated_on_the_serving_input(keras_model, photo_files):
    spec = PreprocessSpec.xception(32)
    backend = KerasBackend(keras_model)
    classifier = Classifier(backend, spec, LABELS)
    served = classifier.predict_sources(photo_files)
    for model in (classifier, backend, keras_model, backend.predict):
        probs = predict_probabilities(model, photo_files, spec, batch_size=2)
        np.testing.assert_allclose(probs, served, atol=1e-6)
    labels = [0, 1, 2, 0, 1]
    evaluation = evaluate(classifier, photo_files, labels, spec, batch_size=2)
    assert evaluation.labels == LABELS and evaluation.n == 5
    assert evaluation.top1 == pytest.approx(np.mean(served.argmax(axis=1) == labels))


def test_a_callable_returning_logits_gets_a_softmax(photo_files):
    logits = np.array([[2.0, 0.0, -1.0]])

    def model(batch):
        return np.repeat(logits, len(batch), axis=0)

    probs = predict_probabilities(model, photo_files[:2], PreprocessSpec.xception(16))
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(probs, np.repeat(expected, 2, axis=0), atol=1e-6)


def test_a_classifier_is_evaluated_with_its_own_preprocessing_only(keras_model, photo_files):
    classifier = Classifier(KerasBackend(keras_model), PreprocessSpec.xception(32), LABELS)
    with pytest.raises(ValueError, match="spec differs"):
        evaluate(classifier, photo_files, [0] * 5, PreprocessSpec(image_size=32, mode="unit"))


# -- temperature ---------------------------------------------------------------------------


def synthetic_logits(scale, n=3000, classes=5, seed=0):
    """Logits `scale` times sharper (or softer) than the distribution the labels come from."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, classes))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return z * scale, labels


def test_an_over_confident_model_gets_a_temperature_above_one_that_lowers_its_nll():
    logits, labels = synthetic_logits(4.0)
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(4.0, rel=0.15)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert nll(apply_temperature(probs, temperature), labels) < nll(probs, labels) - 0.5
    # The same fit from probabilities, as serving stores them.
    assert fit_temperature(probs, labels) == pytest.approx(temperature, rel=1e-3)


def test_an_under_confident_model_gets_a_temperature_below_one():
    logits, labels = synthetic_logits(0.5)
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(0.5, rel=0.15)


def test_the_temperature_stays_within_its_bounds():
    # Always right: the NLL keeps falling as T shrinks, down to the lower bound.
    logits = np.array([[3.0, 0.0], [0.0, 3.0]])
    assert fit_temperature(logits, [0, 1]) == pytest.approx(0.05, rel=1e-3)
    with pytest.raises(ValueError, match="at least one"):
        fit_temperature(np.zeros((0, 3)), [])


# -- promotion gate ------------------------------------------------------------------------

ACTIVE = [[8, 1, 1], [1, 8, 1], [1, 1, 8]]  # recall 0.8 each, macro-F1 0.8


def test_a_better_candidate_is_promoted():
    decision = compare(evaluation_with([[9, 1, 0], [0, 9, 1], [1, 0, 9]]), evaluation_with(ACTIVE))
    assert decision.promote
    assert decision.reasons == ["macro-F1 0.900 is higher than the active model's 0.800"]
    assert decision.recall_drops == []


def test_a_candidate_with_a_lower_macro_f1_is_held():
    decision = compare(evaluation_with([[7, 2, 1], [1, 8, 1], [1, 1, 8]]), evaluation_with(ACTIVE))
    assert not decision.promote
    assert decision.reasons[0] == "macro-F1 0.766 is not higher than the active model's 0.800"


def test_a_candidate_that_loses_recall_on_one_class_is_held_and_names_it():
    # Better overall, but Reynoutria japonica falls from 80 % to 70 % recall.
    candidate = evaluation_with([[10, 0, 0], [0, 10, 0], [2, 1, 7]])
    decision = compare(candidate, evaluation_with(ACTIVE))
    assert candidate.macro_f1 > 0.8 and not decision.promote
    assert decision.reasons[1] == (
        "recall of 'Reynoutria japonica' drops from 0.800 to 0.700 "
        "(10.0 points, more than the 5.0 allowed)"
    )
    [drop] = decision.recall_drops
    assert drop["label"] == "Reynoutria japonica" and drop["drop"] == pytest.approx(0.1)
    assert compare(candidate, evaluation_with(ACTIVE), max_recall_drop=0.1).promote


def test_classes_are_matched_by_name_and_new_classes_are_reported():
    active = evaluation_with(ACTIVE)
    reordered = ["Reynoutria japonica", "Ailanthus altissima", "Buddleja davidii", "Fallopia"]
    # Candidate rows follow its own label order; Ailanthus keeps 0.8, a new class appears.
    candidate = evaluation_with(
        [[9, 1, 0, 0], [2, 8, 0, 0], [0, 0, 9, 1], [0, 0, 0, 10]], labels=reordered
    )
    decision = compare(candidate, active)
    assert decision.promote, decision.reasons
    assert "classes without an active-model recall to compare: Fallopia" in decision.reasons
    assert any("different numbers of photos" in r for r in decision.reasons)
    assert math.isclose(candidate.for_label("Ailanthus altissima").recall, 0.8)
