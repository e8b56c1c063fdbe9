"""PNG figures for a training run's page: learning curves and the confusion matrix.

Drawn with Pillow (already a dependency) rather than matplotlib: two fixed figure types do not
need a plotting library in the worker image. Text uses Pillow's bundled scalable font.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from functools import cache

from PIL import Image, ImageDraw, ImageFont

__all__ = ["confusion_matrix_png", "training_curves_png"]

TRAIN_COLOUR = (31, 119, 180)
VAL_COLOUR = (255, 127, 14)
BEST_COLOUR = (44, 160, 44)
AXIS_COLOUR = (60, 60, 60)
GRID_COLOUR = (225, 225, 225)
TEXT_COLOUR = (20, 20, 20)
BACKGROUND = (255, 255, 255)
HEAT_LOW = (247, 251, 255)
HEAT_HIGH = (8, 48, 107)


@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _format_tick(value: float) -> str:
    text = f"{value:.4g}"
    return "0" if text in ("-0", "0.0") else text


def _finite_points(values: Sequence[float | None] | None) -> list[tuple[int, float]]:
    points = []
    for i, v in enumerate(values or []):
        if v is not None and isinstance(v, int | float) and math.isfinite(v):
            points.append((i + 1, float(v)))
    return points


def _panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    title: str,
    series: list[tuple[str, tuple[int, int, int], list[tuple[int, float]]]],
    epochs: int,
    *,
    y_range: tuple[float, float] | None,
    best_epoch: int | None,
) -> None:
    x0, y0, x1, y1 = box
    title_font, tick_font, label_font = _font(18), _font(13), _font(14)
    tw, _ = _text_size(draw, title, title_font)
    th = _text_size(draw, "Hg", title_font)[1]  # the same plot top for every title
    draw.text(((x0 + x1 - tw) / 2, y0), title, fill=TEXT_COLOUR, font=title_font)
    # Plot area inside the panel, leaving room for tick labels and the axis label.
    left, top, right, bottom = x0 + 62, y0 + th + 16, x1 - 12, y1 - 48
    values = [v for _, _, pts in series for _, v in pts]
    if y_range is not None:
        lo, hi = y_range
    elif values:
        lo, hi = min(values), max(values)
        lo = 0.0 if lo >= 0 and lo < (hi - lo) * 0.5 else lo
        pad = (hi - lo) * 0.05 or 0.05
        lo, hi = lo - (pad if lo != 0 else 0), hi + pad
    else:
        lo, hi = 0.0, 1.0
    y_ticks = _nice_ticks(lo, hi)
    lo, hi = min(lo, y_ticks[0]), max(hi, y_ticks[-1])
    span_x = max(epochs - 1, 1)

    inset = 12  # keeps the first and last markers off the frame

    def px(epoch: float) -> float:
        if epochs <= 1:
            return (left + right) / 2
        return left + inset + (epoch - 1) / span_x * (right - left - 2 * inset)

    def py(value: float) -> float:
        return bottom - (value - lo) / (hi - lo) * (bottom - top)

    for tick in y_ticks:
        y = py(tick)
        draw.line([(left, y), (right, y)], fill=GRID_COLOUR, width=1)
        label = _format_tick(tick)
        w, h = _text_size(draw, label, tick_font)
        draw.text((left - 8 - w, y - h / 2 - 2), label, fill=TEXT_COLOUR, font=tick_font)
    step = max(1, math.ceil(epochs / 10))
    for epoch in range(1, epochs + 1):
        if (epoch - 1) % step and epoch != epochs:
            continue
        x = px(epoch)
        draw.line([(x, bottom), (x, bottom + 5)], fill=AXIS_COLOUR, width=1)
        w, _ = _text_size(draw, str(epoch), tick_font)
        draw.text((x - w / 2, bottom + 8), str(epoch), fill=TEXT_COLOUR, font=tick_font)
    w, _ = _text_size(draw, "epoch", label_font)
    draw.text(((left + right - w) / 2, bottom + 26), "epoch", fill=TEXT_COLOUR, font=label_font)
    if best_epoch is not None and 1 <= best_epoch <= epochs:
        x = px(best_epoch)
        for y in range(int(top), int(bottom), 8):
            draw.line([(x, y), (x, min(y + 4, bottom))], fill=BEST_COLOUR, width=2)
    draw.rectangle([left, top, right, bottom], outline=AXIS_COLOUR, width=1)
    for _, colour, points in series:
        xy = [(px(e), py(v)) for e, v in points]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=3, joint="curve")
        for x, y in xy:
            draw.ellipse([x - 3.5, y - 3.5, x + 3.5, y + 3.5], fill=colour)


def _legend(
    draw: ImageDraw.ImageDraw, centre_x: float, y: float, entries: list[tuple[str, tuple]]
) -> None:
    font = _font(14)
    widths = [_text_size(draw, name, font)[0] + 28 + 22 for name, _ in entries]
    x = centre_x - sum(widths) / 2
    for (name, colour), w in zip(entries, widths, strict=True):
        draw.line([(x, y + 9), (x + 22, y + 9)], fill=colour, width=3)
        draw.text((x + 28, y), name, fill=TEXT_COLOUR, font=font)
        x += w


def training_curves_png(
    history: Mapping[str, Sequence[float | None]],
    *,
    best_epoch: int | None = None,
    title: str | None = None,
) -> bytes:
    """Loss and accuracy per epoch, training vs validation, side by side, as PNG bytes.

    `history` is `TrainingResult.history` (or a Keras History.history): "loss", "val_loss",
    "accuracy", "val_accuracy" lists, one value per epoch (None or missing for absent
    values). `best_epoch` (1-based) draws a dashed marker, e.g. `TrainingResult.best_epoch`.
    """
    if not isinstance(history, Mapping):
        raise ValueError("history must be a mapping of metric name to per-epoch values")
    epochs = max((len(history.get(k) or []) for k in history), default=0)
    width, height = 1100, 490
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    top = 10
    if title:
        font = _font(20)
        w, h = _text_size(draw, title, font)
        draw.text(((width - w) / 2, 8), title, fill=TEXT_COLOUR, font=font)
        top += h + 14
    if epochs == 0:
        font = _font(18)
        message = "no completed epochs yet"
        w, h = _text_size(draw, message, font)
        draw.text(((width - w) / 2, (height - h) / 2), message, fill=TEXT_COLOUR, font=font)
        return _png(image)
    entries = [("training", TRAIN_COLOUR), ("validation", VAL_COLOUR)]
    if best_epoch is not None:
        entries.append((f"best epoch ({best_epoch})", BEST_COLOUR))
    _legend(draw, width / 2, top, entries)
    top += 30
    half = width // 2
    _panel(
        draw,
        (10, top, half - 10, height - 6),
        "Loss",
        [
            ("training", TRAIN_COLOUR, _finite_points(history.get("loss"))),
            ("validation", VAL_COLOUR, _finite_points(history.get("val_loss"))),
        ],
        epochs,
        y_range=None,
        best_epoch=best_epoch,
    )
    _panel(
        draw,
        (half + 10, top, width - 10, height - 6),
        "Accuracy",
        [
            ("training", TRAIN_COLOUR, _finite_points(history.get("accuracy"))),
            ("validation", VAL_COLOUR, _finite_points(history.get("val_accuracy"))),
        ],
        epochs,
        y_range=(0.0, 1.0),
        best_epoch=best_epoch,
    )
    return _png(image)


def _heat(value: float) -> tuple[int, int, int]:
    t = min(max(value, 0.0), 1.0) ** 0.8
    return tuple(round(a + (b - a) * t) for a, b in zip(HEAT_LOW, HEAT_HIGH, strict=True))


def _shorten(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def confusion_matrix_png(
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
    *,
    title: str | None = "Confusion matrix",
) -> bytes:
    """The confusion matrix (rows: true class, columns: predicted) as PNG bytes.

    Cells are shaded by the row's share (so the diagonal reads as each class's recall) and
    show the count when there is room; each row's recall is printed on the right.
    """
    rows = [list(map(int, row)) for row in matrix]
    n = len(labels)
    if len(rows) != n or any(len(row) != n for row in rows):
        raise ValueError(f"matrix must be {n} x {n} for {n} labels")
    names = [_shorten(str(label)) for label in labels]
    cell = max(14, min(64, 840 // max(n, 1)))
    label_font = _font(max(10, min(15, cell // 2 + 2)))
    count_font = _font(max(9, min(15, cell // 3 + 3)))
    title_font, axis_font = _font(20), _font(15)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max((_text_size(probe, name, label_font)[0] for name in names), default=0)
    label_h = _text_size(probe, "Hg", label_font)[1]
    title_h = _text_size(probe, title, title_font)[1] + 16 if title else 0
    margin_left = label_w + 48
    margin_top = title_h + 14
    recall_w = _text_size(probe, "recall 100%", label_font)[0] + 20
    # Column labels are written at 45 degrees below the grid.
    diagonal = int((label_w + label_h) * 0.71) + 16
    width = margin_left + n * cell + recall_w + 20
    width = max(width, margin_left + diagonal)
    height = margin_top + n * cell + diagonal + 26
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    if title:
        w, _ = _text_size(draw, title, title_font)
        draw.text(((width - w) / 2, 8), title, fill=TEXT_COLOUR, font=title_font)
    gx, gy = margin_left, margin_top
    show_counts = cell >= 22
    for i, row in enumerate(rows):
        total = sum(row)
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            x, y = gx + j * cell, gy + i * cell
            draw.rectangle([x, y, x + cell, y + cell], fill=_heat(share), outline=GRID_COLOUR)
            if show_counts and count:
                text = str(count)
                w, h = _text_size(draw, text, count_font)
                colour = BACKGROUND if share > 0.5 else TEXT_COLOUR
                draw.text(
                    (x + (cell - w) / 2, y + (cell - h) / 2 - 2), text, fill=colour, font=count_font
                )
        name = names[i]
        w, h = _text_size(draw, name, label_font)
        draw.text(
            (gx - 10 - w, gy + i * cell + (cell - h) / 2 - 2),
            name,
            fill=TEXT_COLOUR,
            font=label_font,
        )
        recall = f"recall {row[i] / total:.0%}" if total else "no photos"
        draw.text(
            (gx + n * cell + 10, gy + i * cell + (cell - h) / 2 - 2),
            recall,
            fill=TEXT_COLOUR,
            font=label_font,
        )
    draw.rectangle([gx, gy, gx + n * cell, gy + n * cell], outline=AXIS_COLOUR, width=1)
    # "true class" written vertically left of the row labels.
    tw, th = _text_size(draw, "true class", axis_font)
    strip = Image.new("RGBA", (tw + 4, th + 8), (255, 255, 255, 0))
    ImageDraw.Draw(strip).text((2, 0), "true class", fill=TEXT_COLOUR, font=axis_font)
    strip = strip.rotate(90, expand=True)
    image.paste(strip, (8, gy + (n * cell - strip.height) // 2), strip)
    for j, name in enumerate(names):
        w, h = _text_size(draw, name, label_font)
        tile = Image.new("RGBA", (w + 6, h + 8), (255, 255, 255, 0))
        ImageDraw.Draw(tile).text((3, 0), name, fill=TEXT_COLOUR, font=label_font)
        tile = tile.rotate(45, expand=True, resample=Image.Resampling.BICUBIC)
        # Anchor the label's end under its column's centre.
        x = gx + j * cell + cell // 2 - tile.width + h
        image.paste(tile, (x, gy + n * cell + 4), tile)
    w, h = _text_size(draw, "predicted class", axis_font)
    draw.text(
        (gx + (n * cell - w) / 2, gy + n * cell + diagonal - 4),
        "predicted class",
        fill=TEXT_COLOUR,
        font=axis_font,
    )
    return _png(image)
