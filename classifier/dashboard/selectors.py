"""The dashboard's figures: each one a few aggregate queries, however many sightings there are.

Counts by status, taxon, park and week; the review backlog and its age; control follow-up; the
AI against the experts per classifier version; the map's points; training runs, snapshots and
the registry. Views only shape these for templates.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, time, timedelta

from django.db.models import Case, Count, Min, Q, QuerySet, Value, When
from django.db.models.functions import TruncWeek
from django.urls import reverse
from django.utils import timezone

from classifier.models import (
    ClassifierVersion,
    DatasetSnapshot,
    Prediction,
    PromotionEvent,
    Split,
    TrainingRun,
)
from classifier.selectors import version_list
from observations.models import Campaign, Observation, Park, Taxon

Status = Observation.Status
ControlStatus = Observation.ControlStatus

# One colour per status, for the bars, the map's markers and its legend (the badges' hues).
STATUS_COLOURS = {
    Status.RECEIVED: "#1d5a8c",
    Status.CLASSIFIED: "#6a3fb5",
    Status.CLASSIFICATION_FAILED: "#b07300",
    Status.IN_REVIEW: "#0f8a8a",
    Status.CONFIRMED: "#27744d",
    Status.REJECTED: "#a4262c",
    Status.UNIDENTIFIABLE: "#6b7780",
    Status.NEEDS_INFO: "#d9822b",
    Status.CONFLICT: "#c2185b",
}
# Not decided yet: what the curators still have to work through.
BACKLOG_STATUSES = (
    Status.RECEIVED,
    Status.CLASSIFIED,
    Status.CLASSIFICATION_FAILED,
    Status.IN_REVIEW,
    Status.CONFLICT,
)
# Age of a waiting sighting (since it was received): upper bounds, the last one open.
BACKLOG_AGES = (
    (timedelta(days=1), "under a day"),
    (timedelta(days=3), "1–3 days"),
    (timedelta(days=7), "3–7 days"),
    (timedelta(days=28), "1–4 weeks"),
    (None, "over 4 weeks"),
)
OPEN_CONTROL = [value for value in ControlStatus.values if value != ControlStatus.ERADICATED]
WEEKS = 12
MAP_LIMIT = 5000
OUTSIDE_PARKS = "Outside every park"


def _sightings(campaign: Campaign | None) -> QuerySet[Observation]:
    sightings = Observation.objects.order_by()
    return sightings.filter(campaign=campaign) if campaign is not None else sightings


def bars(rows: list[dict], *, value: str = "n") -> list[dict]:
    """Give each row a `width` (percent of the largest value, as text) for a bar chart."""
    largest = max((row[value] for row in rows), default=0)
    for row in rows:
        share = 100 * row[value] / largest if largest else 0
        row["width"] = f"{share:.1f}"
    return rows


# --- counts -----------------------------------------------------------------------------------


def status_counts(*, campaign: Campaign | None = None) -> list[dict]:
    """Sightings per status (those that have any), in the order of the workflow."""
    found = dict(
        _sightings(campaign).values("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    labels = dict(Status.choices)
    return bars(
        [
            {
                "status": status,
                "label": str(labels[status]),
                "n": found[status],
                "colour": STATUS_COLOURS[status],
            }
            for status in Status.values
            if found.get(status)
        ]
    )


def taxon_counts(*, campaign: Campaign | None = None) -> list[dict]:
    """Confirmed sightings per (expert-confirmed) taxon, most first."""
    rows = (
        _sightings(campaign)
        .filter(status=Status.CONFIRMED, final_taxon__isnull=False)
        .values(
            "final_taxon_id",
            "final_taxon__scientific_name",
            "final_taxon__common_name",
            "final_taxon__is_invasive",
        )
        .annotate(n=Count("pk"))
        .order_by("-n", "final_taxon__scientific_name")
    )
    return bars(
        [
            {
                "taxon_id": row["final_taxon_id"],
                "label": row["final_taxon__scientific_name"],
                "common_name": row["final_taxon__common_name"],
                "is_invasive": row["final_taxon__is_invasive"],
                "n": row["n"],
            }
            for row in rows
        ]
    )


def park_counts(*, campaign: Campaign | None = None) -> list[dict]:
    """Sightings per park (and outside every park), with how many of them are confirmed."""
    rows = (
        _sightings(campaign)
        .values("park_id", "park__name")
        .annotate(n=Count("pk"), confirmed=Count("pk", filter=Q(status=Status.CONFIRMED)))
        .order_by("-n", "park__name")
    )
    result = bars(
        [
            {
                "park_id": row["park_id"],
                "label": row["park__name"] or OUTSIDE_PARKS,
                "n": row["n"],
                "confirmed": row["confirmed"],
            }
            for row in rows
        ]
    )
    largest = max((row["n"] for row in result), default=0)
    for row in result:
        row["confirmed_width"] = f"{100 * row['confirmed'] / largest:.1f}" if largest else "0.0"
    return result


def week_counts(
    *, campaign: Campaign | None = None, weeks: int = WEEKS, now: datetime | None = None
) -> list[dict]:
    """Sightings received per week (Monday to Sunday, TIME_ZONE), the last `weeks` weeks.

    Each week also counts those of its sightings now confirmed. Weeks without any are zeros.
    """
    today = timezone.localdate(now or timezone.now())
    monday = today - timedelta(days=today.weekday())
    first = monday - timedelta(weeks=weeks - 1)
    start = datetime.combine(first, time.min, tzinfo=timezone.get_current_timezone())
    rows = (
        _sightings(campaign)
        .filter(received_at__gte=start)
        .annotate(week=TruncWeek("received_at"))
        .values("week")
        .annotate(n=Count("pk"), confirmed=Count("pk", filter=Q(status=Status.CONFIRMED)))
    )
    found = {}
    for row in rows:
        week = row["week"]
        if isinstance(week, datetime):
            week = timezone.localtime(week).date() if timezone.is_aware(week) else week.date()
        found[week] = row
    result = []
    for index in range(weeks):
        day = first + timedelta(weeks=index)
        row = found.get(day, {})
        result.append(
            {
                "week": day,
                "n": row.get("n", 0),
                "confirmed": row.get("confirmed", 0),
                "current": day == monday,
            }
        )
    # Drawn in a viewBox 10 units wide per week and 100 high: columns 7 wide, from the bottom.
    largest = max((row["n"] for row in result), default=0)
    for index, row in enumerate(result):
        height = 100 * row["n"] / largest if largest else 0
        confirmed = 100 * row["confirmed"] / largest if largest else 0
        row["x"] = f"{index * 10 + 1.5:.1f}"
        row["y"], row["height"] = f"{100 - height:.2f}", f"{height:.2f}"
        row["confirmed_y"], row["confirmed_height"] = f"{100 - confirmed:.2f}", f"{confirmed:.2f}"
    return result


def headline_counts(*, campaign: Campaign | None = None) -> dict:
    """The four numbers at the top of the dashboard, in one query."""
    open_control = Q(
        status=Status.CONFIRMED,
        final_taxon__is_invasive=True,
        control_status__in=OPEN_CONTROL,
    )
    return _sightings(campaign).aggregate(
        total=Count("pk"),
        waiting=Count("pk", filter=Q(status__in=BACKLOG_STATUSES)),
        confirmed=Count("pk", filter=Q(status=Status.CONFIRMED)),
        open_control=Count("pk", filter=open_control),
    )


# --- review backlog and control follow-up -------------------------------------------------------


def review_backlog(
    *, campaign: Campaign | None = None, now: datetime | None = None, oldest: int = 5
) -> dict:
    """Sightings not decided yet: how many, how old (by received time), and the oldest ones."""
    now = now or timezone.now()
    waiting = _sightings(campaign).filter(status__in=BACKLOG_STATUSES)
    buckets = {}
    lower = None
    for index, (upper, _label) in enumerate(BACKLOG_AGES):
        condition = Q()
        if upper is not None:
            condition &= Q(received_at__gt=now - upper)
        if lower is not None:
            condition &= Q(received_at__lte=now - lower)
        buckets[f"age_{index}"] = Count("pk", filter=condition)
        lower = upper
    figures = waiting.aggregate(
        total=Count("pk"),
        oldest_at=Min("received_at"),
        in_review=Count("pk", filter=Q(status=Status.IN_REVIEW)),
        conflict=Count("pk", filter=Q(status=Status.CONFLICT)),
        **buckets,
    )
    ages = bars(
        [
            {"label": label, "n": figures[f"age_{index}"]}
            for index, (_upper, label) in enumerate(BACKLOG_AGES)
        ]
    )
    oldest_rows = list(
        waiting.select_related("park", "ai_taxon", "campaign").order_by("received_at", "pk")[
            :oldest
        ]
    )
    for observation in oldest_rows:
        observation.age = now - observation.received_at
    oldest_at = figures["oldest_at"]
    return {
        "total": figures["total"],
        "in_review": figures["in_review"],
        "conflict": figures["conflict"],
        "oldest_at": oldest_at,
        "oldest_age": now - oldest_at if oldest_at else None,
        "ages": ages,
        "oldest": oldest_rows,
    }


def control_overview(*, campaign: Campaign | None = None, limit: int = 6) -> dict:
    """Confirmed invasive sightings under follow-up: counts per step, and the oldest open ones."""
    cases = _sightings(campaign).filter(status=Status.CONFIRMED, final_taxon__is_invasive=True)
    found = dict(
        cases.exclude(control_status="")
        .values("control_status")
        .annotate(n=Count("pk"))
        .values_list("control_status", "n")
    )
    labels = dict(ControlStatus.choices)
    steps = bars(
        [
            {
                "status": status,
                "label": str(labels[status]),
                "n": found.get(status, 0),
                "open": status != ControlStatus.ERADICATED,
            }
            for status in ControlStatus.values
        ]
    )
    open_cases = list(
        cases.filter(control_status__in=OPEN_CONTROL)
        .select_related("final_taxon", "park")
        .order_by("decided_at", "pk")[:limit]
    )
    return {
        "open": sum(row["n"] for row in steps if row["open"]),
        "eradicated": found.get(ControlStatus.ERADICATED, 0),
        "steps": steps,
        "oldest_open": open_cases,
    }


# --- the AI against the experts -----------------------------------------------------------------


def _rate(matched: int, total: int) -> float | None:
    return matched / total if total else None


def percent_text(value: float | None) -> str:
    """0.834 -> "83%"; None (nothing to measure) -> an en dash."""
    return "–" if value is None else f"{round(100 * value)}%"


def ai_vs_experts(*, campaign: Campaign | None = None) -> list[dict]:
    """For each classifier version, its merged top-1 against the confirmed taxon.

    Over confirmed sightings that the version classified (its rank-1 Prediction without a
    photo): per confirmed taxon, how many, how many the AI's top-1 matched, and the rate; and
    the confusion table (rows: confirmed taxon; columns: the AI's top-1, a taxon or a raw
    label). Three queries, whatever the number of versions, taxa and sightings.
    """
    predictions = Prediction.objects.filter(
        photo__isnull=True,
        rank=1,
        observation__status=Status.CONFIRMED,
        observation__final_taxon__isnull=False,
    )
    if campaign is not None:
        predictions = predictions.filter(observation__campaign=campaign)
    rows = list(
        predictions.values("version_id", "observation__final_taxon_id", "taxon_id", "label")
        .annotate(n=Count("pk"))
        .order_by()
    )
    if not rows:
        return []
    taxon_ids = {row["observation__final_taxon_id"] for row in rows}
    taxon_ids |= {row["taxon_id"] for row in rows if row["taxon_id"]}
    taxa = Taxon.objects.in_bulk(taxon_ids)
    versions = ClassifierVersion.objects.select_related("campaign").in_bulk(
        {row["version_id"] for row in rows}
    )

    cells: dict[int, dict[tuple, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        column = ("taxon", row["taxon_id"]) if row["taxon_id"] else ("label", row["label"])
        cells[row["version_id"]][(row["observation__final_taxon_id"], column)] += row["n"]

    def taxon_key(taxon_id: int) -> str:
        return taxa[taxon_id].scientific_name

    result = []
    for version_id, counts in cells.items():
        confirmed_ids = sorted({taxon_id for taxon_id, _ in counts}, key=taxon_key)
        predicted = {column for _, column in counts}
        columns = [("taxon", taxon_id) for taxon_id in confirmed_ids]
        columns += sorted(
            (c for c in predicted if c[0] == "taxon" and c[1] not in confirmed_ids),
            key=lambda column: taxon_key(column[1]),
        )
        columns += sorted((c for c in predicted if c[0] == "label"), key=lambda c: c[1])
        per_taxon, matrix = [], []
        for taxon_id in confirmed_ids:
            line = [counts.get((taxon_id, column), 0) for column in columns]
            total = sum(line)
            matched = counts.get((taxon_id, ("taxon", taxon_id)), 0)
            per_taxon.append(
                {
                    "taxon": taxa[taxon_id],
                    "confirmed": total,
                    "matched": matched,
                    "rate": _rate(matched, total),
                    "rate_text": percent_text(_rate(matched, total)),
                    "width": f"{100 * matched / total:.1f}" if total else "0.0",
                }
            )
            matrix.append(
                {
                    "taxon": taxa[taxon_id],
                    "cells": [
                        {"n": n, "diagonal": column == ("taxon", taxon_id)}
                        for n, column in zip(line, columns, strict=True)
                    ],
                    "total": total,
                }
            )
        total = sum(item["confirmed"] for item in per_taxon)
        matched = sum(item["matched"] for item in per_taxon)
        result.append(
            {
                "version": versions[version_id],
                "confirmed": total,
                "matched": matched,
                "rate": _rate(matched, total),
                "rate_text": percent_text(_rate(matched, total)),
                "per_taxon": per_taxon,
                "columns": [
                    {"taxon": taxa[value], "label": taxa[value].scientific_name}
                    if kind == "taxon"
                    else {"taxon": None, "label": value}
                    for kind, value in columns
                ],
                "matrix": matrix,
            }
        )
    result.sort(key=lambda item: (item["version"].created_at, item["version"].pk), reverse=True)
    return result


# --- the map ------------------------------------------------------------------------------------


def map_features(*, campaign: Campaign | None = None, limit: int = MAP_LIMIT) -> dict:
    """The newest `limit` sightings as a GeoJSON FeatureCollection, at their exact positions.

    For admins only (the views check): sensitive taxa are not generalised here.
    """
    labels = dict(Status.choices)
    rows = list(
        _sightings(campaign)
        .order_by("-received_at", "-pk")
        .values(
            "uuid",
            "latitude",
            "longitude",
            "status",
            "observed_at",
            "park__name",
            "final_taxon__scientific_name",
            "ai_taxon__scientific_name",
            "ai_label",
        )[:limit]
    )
    total = len(rows) if len(rows) < limit else _sightings(campaign).count()
    features = []
    for row in rows:
        if row["status"] == Status.CONFIRMED and row["final_taxon__scientific_name"]:
            taxon, source = row["final_taxon__scientific_name"], "expert"
        elif row["ai_taxon__scientific_name"] or row["ai_label"]:
            taxon, source = row["ai_taxon__scientific_name"] or row["ai_label"], "AI"
        else:
            taxon, source = "", ""
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [row["longitude"], row["latitude"]]},
                "properties": {
                    "uuid": str(row["uuid"]),
                    "status": row["status"],
                    "status_display": str(labels.get(row["status"], row["status"])),
                    "taxon": taxon,
                    "taxon_source": source,
                    "park": row["park__name"] or OUTSIDE_PARKS,
                    "observed_at": row["observed_at"].isoformat(),
                    "url": reverse("review-sighting", kwargs={"uuid": row["uuid"]}),
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "total": total,
        "truncated": total > len(features),
    }


def map_parks(*, campaign: Campaign | None = None) -> list[dict]:
    parks = Park.objects.order_by("name")
    if campaign is not None:
        parks = parks.filter(campaigns=campaign)
    return [
        {"name": name, "boundary": boundary}
        for name, boundary in parks.values_list("name", "boundary")
    ]


# --- registry, training, datasets -----------------------------------------------------------------


def classifier_versions() -> list[ClassifierVersion]:
    """Every version by campaign, the active one first, then newest first (two queries)."""
    active_first = Case(When(state=ClassifierVersion.State.ACTIVE, then=Value(0)), default=1)
    return list(version_list().order_by("campaign__name", active_first, "-created_at", "-pk"))


_PLOT_KIND = re.compile(r"[-a-zA-Z0-9_]+")  # the plot URL's <slug:kind>
PLOT_TITLES = {"curves": "Training curves", "confusion": "Confusion matrix (test split)"}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def model_card(version: ClassifierVersion) -> dict:
    """A version's card as the classifiers page shows it; no query.

    A trained version's `metrics["test"]` is an evaluation (top-1, top-5, macro-F1, per-taxon
    precision and recall, confusion); imported ones carry whatever numbers their source gave.
    """
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    card = version.model_card if isinstance(version.model_card, dict) else {}
    test = metrics.get("test")
    evaluation = None
    if isinstance(test, dict) and _number(test.get("top1")) is not None:
        labels = [str(label) for label in test.get("labels") or []]
        confusion = test.get("confusion") or []
        evaluation = {
            "split": metrics.get("split") or "test",
            "snapshot": metrics.get("snapshot"),
            "n": test.get("n"),
            "figures": [
                {"name": name, "value": percent_text(_number(test.get(key)))}
                for key, name in (
                    ("top1", "Top-1"),
                    ("top5", "Top-5"),
                    ("macro_f1", "Macro-F1"),
                    ("weighted_f1", "Weighted F1"),
                )
                if _number(test.get(key)) is not None
            ],
            "calibration": [
                {"name": name, "value": f"{_number(test.get(key)):.3f}"}
                for key, name in (("nll", "NLL"), ("ece", "ECE"))
                if _number(test.get(key)) is not None
            ],
            "per_class": [
                {
                    "label": item.get("label", ""),
                    "precision": f"{_number(item.get('precision')) or 0:.2f}",
                    "recall": f"{_number(item.get('recall')) or 0:.2f}",
                    "f1": f"{_number(item.get('f1')) or 0:.2f}",
                    "support": item.get("support", 0),
                }
                for item in test.get("per_class") or []
                if isinstance(item, dict)
            ],
            "labels": labels,
            "confusion": [
                {
                    "label": labels[index] if index < len(labels) else str(index),
                    "cells": [
                        {"n": n, "diagonal": column == index} for column, n in enumerate(row)
                    ],
                }
                for index, row in enumerate(confusion)
                if isinstance(row, list)
            ],
        }
    other = [
        {"name": str(key).replace("_", " "), "value": f"{_number(value):.4g}"}
        for key, value in metrics.items()
        if key != "test" and _number(value) is not None
    ]
    plots = card.get("plots") if isinstance(card.get("plots"), dict) else {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    parameters = training.get("parameters") if isinstance(training.get("parameters"), dict) else {}
    return {
        "evaluation": evaluation,
        "other_metrics": other,
        "plots": [
            {"kind": kind, "title": PLOT_TITLES.get(kind, kind.replace("_", " ").capitalize())}
            for kind, name in plots.items()
            if isinstance(name, str) and name and _PLOT_KIND.fullmatch(str(kind))
        ],
        "parameters": sorted(
            (str(key), value if isinstance(value, str) else str(value))
            for key, value in parameters.items()
        ),
        "best_epoch": training.get("best_epoch"),
    }


def plot_name(version: ClassifierVersion, kind: str) -> str | None:
    """The storage name of one of a version's plots; only names the model card holds."""
    card = version.model_card if isinstance(version.model_card, dict) else {}
    plots = card.get("plots") if isinstance(card.get("plots"), dict) else {}
    name = plots.get(kind)
    return name if isinstance(name, str) and name else None


def promotion_history(*, limit: int = 50) -> list[PromotionEvent]:
    return list(
        PromotionEvent.objects.select_related("version__campaign", "previous", "user").order_by(
            "-created_at", "-pk"
        )[:limit]
    )


def rollback_targets() -> dict[int, ClassifierVersion]:
    """For each active version, the one a roll-back brings back (as `version_rollback` finds it)."""
    events = (
        PromotionEvent.objects.filter(
            version__state=ClassifierVersion.State.ACTIVE, previous__isnull=False
        )
        .exclude(action=PromotionEvent.Action.HELD)
        .select_related("previous")
        .order_by("-created_at", "-pk")
    )
    targets: dict[int, ClassifierVersion] = {}
    for event in events:
        targets.setdefault(event.version_id, event.previous)
    return targets


def training_runs(*, limit: int = 20) -> list[TrainingRun]:
    """The newest runs, each with its latest promotion decision as `promotion` (two queries)."""
    runs = list(
        TrainingRun.objects.select_related(
            "campaign", "snapshot", "result_version", "created_by"
        ).order_by("-created_at", "-pk")[:limit]
    )
    version_ids = [run.result_version_id for run in runs if run.result_version_id]
    latest: dict[int, PromotionEvent] = {}
    if version_ids:
        for event in PromotionEvent.objects.filter(version_id__in=version_ids).order_by(
            "created_at", "pk"
        ):
            latest[event.version_id] = event
    for run in runs:
        run.promotion = latest.get(run.result_version_id)
    return runs


def run_percent(run: TrainingRun) -> float:
    """How far a run is, from its last progress report (as the API's `percent`)."""
    if run.state == TrainingRun.State.SUCCEEDED:
        return 100.0
    progress = run.progress or {}
    epochs, epoch = progress.get("epochs") or 0, progress.get("epoch") or 0
    steps, step = progress.get("steps") or 0, progress.get("step") or 0
    if not epochs:
        return 0.0
    # A step report is inside epoch `epoch`; an epoch report closes it.
    within = step / steps if steps else 0
    done = epoch - 1 + within if progress.get("event") == "step" else epoch
    return round(max(0.0, min(100.0, 100 * done / epochs)), 1)


def run_parameters_text(run: TrainingRun) -> str:
    """A run's parameters in a line: "xception at 299 px · 15 epochs of batches of 16 · ..."."""
    parameters = run.parameters if isinstance(run.parameters, dict) else {}
    parts = []
    if parameters.get("architecture"):
        size = parameters.get("image_size")
        parts.append(f"{parameters['architecture']}" + (f" at {size} px" if size else ""))
    if parameters.get("epochs"):
        batch = parameters.get("batch_size")
        epochs = f"{parameters['epochs']} epoch{'s' if parameters['epochs'] != 1 else ''}"
        parts.append(epochs + (f" of batches of {batch}" if batch else ""))
    if parameters.get("learning_rate") is not None:
        parts.append(f"learning rate {parameters['learning_rate']:g}")
    if parameters.get("start_from"):
        parts.append(f"from {parameters['start_from']}")
    if "augmentation" in parameters:
        parts.append(f"augmentation {'on' if parameters['augmentation'] else 'off'}")
    if "class_weights" in parameters:
        parts.append(f"class weights {'on' if parameters['class_weights'] else 'off'}")
    return " · ".join(parts)


METRIC_NAMES = (
    ("loss", "loss"),
    ("accuracy", "accuracy"),
    ("val_loss", "val. loss"),
    ("val_accuracy", "val. accuracy"),
)


def run_progress(run: TrainingRun, *, log_lines: int = 12) -> dict:
    """What the training page shows of a run, and what its progress.json answers."""
    progress = run.progress or {}
    parts = []
    if progress.get("epochs"):
        parts.append(f"Epoch {progress.get('epoch') or 0} of {progress['epochs']}")
    if progress.get("steps") and progress.get("event") == "step":
        parts.append(f"step {progress.get('step') or 0} of {progress['steps']}")
    metrics = []
    for key, name in METRIC_NAMES:
        value = progress.get(key)
        if isinstance(value, int | float):
            metrics.append({"key": key, "name": name, "value": f"{value:.4g}"})
    active = run.state in (TrainingRun.State.QUEUED, TrainingRun.State.RUNNING)
    percent = run_percent(run)
    if run.state == TrainingRun.State.QUEUED:
        headline = "Waiting for the training worker"
    elif run.state == TrainingRun.State.RUNNING and not parts:
        headline = "Preparing the dataset and the model"
    else:
        headline = " · ".join(parts)
    if run.cancel_requested and active:
        headline = (headline + " · " if headline else "") + "cancelling at the next step"
    log = (run.log or "").rstrip("\n").splitlines()
    return {
        "id": run.pk,
        "state": run.state,
        "state_display": run.get_state_display(),
        "active": active,
        "cancel_requested": run.cancel_requested,
        "percent": percent,
        "percent_text": f"{percent:.0f}%",
        "width": f"{percent:.1f}",
        "epoch": progress.get("epoch"),
        "epochs": progress.get("epochs"),
        "step": progress.get("step"),
        "steps": progress.get("steps"),
        "headline": headline,
        "metrics": metrics,
        "log_tail": "\n".join(log[-log_lines:]),
        "error": run.error,
        "result_version": run.result_version.label if run.result_version_id else None,
    }


def dataset_snapshots(*, limit: int = 10) -> list[dict]:
    """The newest frozen datasets with photo counts per taxon and split, and their totals."""
    snapshots = DatasetSnapshot.objects.select_related("campaign", "created_by").order_by(
        "-created_at", "-pk"
    )[:limit]
    result = []
    for snapshot in snapshots:
        counts = snapshot.counts or {}
        rows = []
        for label in snapshot.labels or sorted(counts):
            by_split = counts.get(label, {})
            splits = [int(by_split.get(split, 0)) for split in Split.values]
            rows.append({"label": label, "splits": splits, "total": sum(splits)})
        totals = [sum(row["splits"][index] for row in rows) for index in range(len(Split.values))]
        result.append(
            {
                "snapshot": snapshot,
                "rows": rows,
                "totals": totals,
                "total": sum(totals),
                "splits": list(Split.labels),
            }
        )
    return result


def campaigns() -> list[Campaign]:
    return list(Campaign.objects.order_by("-is_default", "name"))
