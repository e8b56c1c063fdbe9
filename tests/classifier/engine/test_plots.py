import io

import numpy as np
import pytest
from PIL import Image

from classifier.engine.plots import (
    BEST_COLOUR,
    HEAT_HIGH,
    TRAIN_COLOUR,
    VAL_COLOUR,
    confusion_matrix_png,
    training_curves_png,
)

HISTORY = {
    "loss": [1.2, 0.8, 0.6, 0.5, 0.45],
    "val_loss": [1.1, 0.9, 0.7, 0.72, 0.75],
    "accuracy": [0.4, 0.6, 0.7, 0.8, 0.85],
    "val_accuracy": [0.45, 0.55, 0.7, 0.69, 0.68],
}


def open_png(data: bytes) -> Image.Image:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image.convert("RGB")


def count_colour(image: Image.Image, colour, tolerance: int = 12) -> int:
    pixels = np.asarray(image, dtype=np.int16)
    return int((np.abs(pixels - np.array(colour)).max(axis=-1) <= tolerance).sum())


def test_training_curves_draw_training_and_validation_lines_and_the_best_epoch():
    image = open_png(training_curves_png(HISTORY, best_epoch=3, title="Run 7"))
    assert image.size == (1100, 490)
    # Each line is drawn in both panels (loss, accuracy) and in the legend.
    assert count_colour(image, TRAIN_COLOUR) > 500
    assert count_colour(image, VAL_COLOUR) > 500
    assert count_colour(image, BEST_COLOUR) > 100


def test_training_curves_without_validation_or_epochs_are_still_pictures():
    only_training = open_png(training_curves_png({"loss": [0.9, None, 0.5], "accuracy": []}))
    assert count_colour(only_training, TRAIN_COLOUR) > 100
    assert count_colour(only_training, VAL_COLOUR) == count_colour(
        open_png(training_curves_png({"loss": [0.9]})), VAL_COLOUR
    )  # the legend swatch only
    empty = open_png(training_curves_png({}))
    assert count_colour(empty, TRAIN_COLOUR) == 0
    with pytest.raises(ValueError, match="history must be a mapping"):
        training_curves_png([0.5, 0.4])


def test_the_confusion_matrix_shades_each_row_by_its_share():
    labels = ["Ailanthus altissima", "Buddleja davidii", "Reynoutria japonica"]
    image = open_png(confusion_matrix_png([[10, 0, 0], [2, 8, 0], [0, 5, 5]], labels))
    assert 300 < image.width < 1200 and 200 < image.height < 1200
    # A fully correct row fills its diagonal cell with the darkest shade.
    assert count_colour(image, HEAT_HIGH, tolerance=4) > 30 * 30


def test_a_confusion_matrix_of_many_classes_stays_a_readable_size():
    n = 40
    matrix = (np.eye(n, dtype=int) * 9 + 1).tolist()
    image = open_png(
        confusion_matrix_png(matrix, [f"Species {i} with a long name" for i in range(n)])
    )
    assert image.width < 1600 and image.height < 1600


def test_the_confusion_matrix_must_match_its_labels():
    with pytest.raises(ValueError, match="matrix must be 2 x 2 for 2 labels"):
        confusion_matrix_png([[1, 2, 3]], ["a", "b"])
