"""Training runs: from a dataset snapshot to an evaluated, gated candidate version.

A run is queued here (web or CLI) and executed by the training worker (`training` queue,
concurrency 1). Its progress, log and state live in its row, so the dashboard and the API show
them and nothing is lost with the worker. A worker that dies leaves the run `running` with a
stale heartbeat: the sweeper marks it `failed` with the reason, and a new run can resume from
its last checkpoint.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from classifier.engine.training import TrainingConfig
from classifier.models import (
    ClassifierVersion,
    DatasetItem,
    DatasetSnapshot,
    PromotionEvent,
    TrainingRun,
)
from classifier.services.datasets import snapshot_create
from classifier.services.promotion import version_hold, version_promote
from classifier.services.registry import (
    RegistryError,
    active_version,
    local_weights,
    version_load,
    version_register,
)
from observations.models import Campaign, Observation
from observations.storage import named_storage

logger = logging.getLogger(__name__)

TRAIN_TASK = "classifier.tasks.train_model"
START_FROM_ACTIVE = "active"


def training_parameters_check(parameters: dict) -> TrainingConfig:
    """The run's parameters as a TrainingConfig, or a clear 400 naming what is wrong."""
    parameters = dict(parameters or {})
    parameters.pop("start_from", None)
    defaults = dict(settings.TRAINING_DEFAULTS)
    defaults.update(parameters)
    if defaults.get("weights") == "imagenet" and not defaults.get("imagenet_weights_path"):
        defaults["imagenet_weights_path"] = settings.TRAINING_IMAGENET_WEIGHTS or None
    try:
        return TrainingConfig.from_dict(defaults)
    except (TypeError, ValueError) as exc:
        raise RegistryError(
            f"Invalid training parameters: {exc}", code="invalid_parameters", field="parameters"
        ) from None


@transaction.atomic
def training_run_create(
    *,
    campaign: Campaign,
    parameters: dict | None = None,
    snapshot: DatasetSnapshot | None = None,
    created_by=None,
    resume_from: TrainingRun | None = None,
    enqueue: bool = True,
) -> TrainingRun:
    """Queue a training run (a new snapshot is frozen unless one is given or resumed).

    `enqueue=False` leaves it for the caller to execute (the `train --here` command).
    """
    if resume_from is not None:
        if resume_from.state not in (TrainingRun.State.FAILED, TrainingRun.State.CANCELLED):
            raise RegistryError(
                "Only a failed or cancelled run can be resumed.", code="not_resumable"
            )
        snapshot = resume_from.snapshot
        parameters = {**resume_from.parameters, **(parameters or {})}
    parameters = dict(parameters or {})
    config = training_parameters_check(parameters)
    if parameters.get("start_from") not in (None, "", START_FROM_ACTIVE, "scratch", "imagenet"):
        raise RegistryError(
            "start_from must be active, imagenet or scratch.",
            code="invalid_parameters",
            field="start_from",
        )
    if snapshot is None:
        snapshot = snapshot_create(campaign=campaign, created_by=created_by)
    if snapshot.campaign_id != campaign.pk:
        raise RegistryError(
            "That dataset belongs to another campaign.", code="wrong_campaign", field="snapshot"
        )
    train_count = snapshot.items.filter(split="train").count()
    if train_count == 0 or len(snapshot.labels) < 2:
        raise RegistryError(
            "The dataset needs photos of at least two taxa in its train split.",
            code="dataset_too_small",
        )
    run = TrainingRun.objects.create(
        campaign=campaign,
        snapshot=snapshot,
        parameters={**config.to_dict(), "start_from": parameters.get("start_from") or "imagenet"},
        created_by=created_by,
        resumed_from=resume_from,
    )
    if enqueue:
        transaction.on_commit(lambda: _enqueue(run.pk), robust=True)
    return run


def _enqueue(run_id: int) -> None:
    try:
        current_app.send_task(TRAIN_TASK, args=[run_id], queue="training", retry=False)
    except Exception:
        logger.warning("Could not enqueue training run %s; the sweeper will", run_id, exc_info=True)


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Ask a run to stop: a queued one stops at once, a running one at its next step."""
    TrainingRun.objects.filter(pk=run.pk, state=TrainingRun.State.QUEUED).update(
        state=TrainingRun.State.CANCELLED, finished_at=timezone.now(), cancel_requested=True
    )
    TrainingRun.objects.filter(pk=run.pk, state=TrainingRun.State.RUNNING).update(
        cancel_requested=True
    )
    run.refresh_from_db()
    return run


def _log(run: TrainingRun, line: str) -> None:
    stamp = timezone.now().strftime("%Y-%m-%d %H:%M:%S")
    run.log = f"{run.log}{stamp} {line}\n"
    TrainingRun.objects.filter(pk=run.pk).update(log=run.log, heartbeat_at=timezone.now())
    logger.info("Training run %s: %s", run.pk, line)


def _samples(
    snapshot: DatasetSnapshot, split: str, index: dict[str, int]
) -> list[tuple[object, int]]:
    items = DatasetItem.objects.filter(snapshot=snapshot, split=split).select_related(
        "photo", "image", "taxon"
    )
    samples = []
    for item in items.order_by("pk"):
        field_file = item.photo.image if item.photo_id else item.image.file
        samples.append((_source(field_file), index[item.taxon.scientific_name]))
    return samples


def _source(field_file):
    """A local path when the storage has one, else a callable reading the bytes (S3)."""
    try:
        return field_file.path
    except NotImplementedError:
        name, storage = field_file.name, field_file.storage

        def read() -> bytes:
            with storage.open(name, "rb") as handle:
                return handle.read()

        return read


def training_run_claim(run_id: int) -> TrainingRun | None:
    now = timezone.now()
    if not TrainingRun.objects.filter(pk=run_id, state=TrainingRun.State.QUEUED).update(
        state=TrainingRun.State.RUNNING, started_at=now, heartbeat_at=now
    ):
        return None
    return TrainingRun.objects.select_related("snapshot", "campaign", "resumed_from").get(pk=run_id)


def training_run_execute(*, run_id: int) -> TrainingRun | None:
    """The training worker's work: train, evaluate, calibrate, register, gate. One at a time."""
    from classifier.engine.evaluation import (
        compare,
        evaluation_from_probabilities,
        fit_temperature,
        predict_probabilities,
    )
    from classifier.engine.plots import confusion_matrix_png, training_curves_png
    from classifier.engine.training import latest_checkpoint, train

    run = training_run_claim(run_id)
    if run is None:
        return None
    try:
        snapshot = run.snapshot
        labels = list(snapshot.labels)
        index = {label: i for i, label in enumerate(labels)}
        parameters = dict(run.parameters)
        start_from = parameters.pop("start_from", "imagenet")
        previous = active_version(campaign_id=run.campaign_id)
        reuse_head = False
        if start_from == START_FROM_ACTIVE and previous is not None and previous.backend == "keras":
            parameters["weights"] = str(local_weights(previous))
            # The old head fits only if the classes are the same ones, in the same order.
            reuse_head = _class_names(previous) == labels
        elif start_from == "scratch":
            parameters["weights"] = None
        config = training_parameters_check(parameters)
        spec = config.preprocess_spec()
        train_samples = _samples(snapshot, "train", index)
        val_samples = _samples(snapshot, "val", index)
        test_samples = _samples(snapshot, "test", index)
        workdir = Path(settings.TRAINING_WORKDIR) / f"run-{run.pk}"
        workdir.mkdir(parents=True, exist_ok=True)
        TrainingRun.objects.filter(pk=run.pk).update(workdir=str(workdir))
        resume = None
        if run.resumed_from_id and run.resumed_from.workdir:
            resume = latest_checkpoint(run.resumed_from.workdir)
        _log(
            run,
            f"Dataset v{snapshot.version}: {len(train_samples)} train, {len(val_samples)} val, "
            f"{len(test_samples)} test photos, {len(labels)} classes; {config.architecture} at "
            f"{config.image_size} px"
            + (f"; resuming after epoch {resume.epoch}" if resume else ""),
        )

        last_check = [0.0, False]

        def should_stop() -> bool:
            if time.monotonic() - last_check[0] > 2:
                last_check[0] = time.monotonic()
                last_check[1] = TrainingRun.objects.filter(
                    pk=run.pk, cancel_requested=True
                ).exists()
            return last_check[1]

        def on_progress(progress: dict) -> None:
            TrainingRun.objects.filter(pk=run.pk).update(
                progress=progress, heartbeat_at=timezone.now()
            )
            if progress.get("event") == "epoch":
                _log(
                    run,
                    f"epoch {progress['epoch']}/{progress['epochs']}: loss {progress.get('loss') or 0:.4f}, "
                    f"accuracy {progress.get('accuracy') or 0:.3f}, val_loss {progress.get('val_loss') or 0:.4f}, "
                    f"val_accuracy {progress.get('val_accuracy') or 0:.3f}",
                )

        result = train(
            config,
            train_samples,
            val_samples,
            spec,
            workdir=workdir,
            num_classes=len(labels),
            on_progress=on_progress,
            should_stop=should_stop,
            resume_from_checkpoint=resume.path if resume else None,
            initial_epoch=resume.epoch if resume else None,
            reuse_head=reuse_head,
        )
        for warning in result.warnings:
            _log(run, f"warning: {warning}")
        if result.cancelled:
            _log(run, "Cancelled; the last checkpoint is kept to resume from.")
            _finish(run, TrainingRun.State.CANCELLED)
            run.refresh_from_db()
            return run

        _log(
            run,
            f"Trained {result.epochs_completed} epoch(s); best epoch {result.best_epoch}. Evaluating.",
        )
        import keras

        model = keras.saving.load_model(result.model_path, compile=False)
        evaluate_on = test_samples or val_samples
        evaluate_labels = [label for _, label in evaluate_on]
        sources = [source for source, _ in evaluate_on]
        temperature = None
        if val_samples:
            val_probs = predict_probabilities(model, [s for s, _ in val_samples], spec)
            temperature = fit_temperature(val_probs, [label for _, label in val_samples])
        test_probs = predict_probabilities(model, sources, spec)
        if temperature:
            from classifier.engine.inference import apply_temperature

            test_probs = apply_temperature(test_probs, temperature)
        candidate_eval = evaluation_from_probabilities(
            test_probs, evaluate_labels, label_names=labels
        )

        version = version_register(
            name=f"{config.architecture} · dataset v{snapshot.version}",
            campaign=run.campaign,
            backend=ClassifierVersion.Backend.KERAS,
            weights_path=result.model_path,
            labels=labels,
            spec=spec,
            architecture=config.architecture,
            metrics={
                "test": candidate_eval.to_dict(),
                "split": "test" if test_samples else "val",
                "snapshot": snapshot.version,
            },
            temperature=temperature,
            source=f"training run {run.pk} on dataset v{snapshot.version}",
            description=f"Trained by ParkWatch from {len(train_samples)} photos.",
            model_card={
                "training": {
                    "parameters": run.parameters,
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                },
            },
            created_by=run.created_by,
        )
        storage = named_storage("models")
        curves = storage.save(
            f"cards/version-{version.pk}-curves.png",
            ContentFile(training_curves_png(result.history, best_epoch=result.best_epoch)),
        )
        confusion = storage.save(
            f"cards/version-{version.pk}-confusion.png",
            ContentFile(confusion_matrix_png(candidate_eval.confusion, labels)),
        )
        ClassifierVersion.objects.filter(pk=version.pk).update(
            model_card={**version.model_card, "plots": {"curves": curves, "confusion": confusion}}
        )
        TrainingRun.objects.filter(pk=run.pk).update(
            result_version=version, evaluation=candidate_eval.to_dict()
        )
        _log(
            run,
            f"Candidate {version.label}: macro-F1 {candidate_eval.macro_f1:.3f}, top-1 {candidate_eval.top1:.3f}.",
        )

        if previous is None:
            version_promote(
                version=version,
                action=PromotionEvent.Action.PROMOTED,
                reasons=["No classifier was active for this campaign."],
                comparison={"candidate": candidate_eval.to_dict()},
            )
            _log(run, f"Promoted {version.label}: no classifier was active.")
        else:
            active_classifier = version_load(previous, compute_dtype="float32")
            active_probs = predict_probabilities(active_classifier, sources, active_classifier.spec)
            projected = _project(active_probs, previous, labels)
            active_eval = evaluation_from_probabilities(
                projected, evaluate_labels, label_names=labels
            )
            decision = compare(
                candidate_eval, active_eval, max_recall_drop=settings.PROMOTION_MAX_RECALL_DROP
            )
            comparison = {
                "candidate": candidate_eval.to_dict(),
                "active": active_eval.to_dict(),
                **decision.to_dict(),
            }
            if decision.promote:
                version_promote(
                    version=version,
                    action=PromotionEvent.Action.PROMOTED,
                    reasons=decision.reasons,
                    comparison=comparison,
                )
                _log(
                    run,
                    f"Promoted {version.label} over {previous.label}: "
                    + "; ".join(decision.reasons),
                )
            else:
                version_hold(version=version, reasons=decision.reasons, comparison=comparison)
                _log(run, f"Held back {version.label}: " + "; ".join(decision.reasons))
        _finish(run, TrainingRun.State.SUCCEEDED)
    except SoftTimeLimitExceeded:
        # Even mid-checkpoint this is safe: latest.json names only whole checkpoint files, so
        # a new run resumes from the last complete epoch.
        reason = (
            "The run went over the training time limit (CELERY_TRAINING_SOFT_TIME_LIMIT) and "
            "was stopped; start a new run resuming from this one's last checkpoint."
        )
        run.refresh_from_db()
        _log(run, reason)
        _finish(run, TrainingRun.State.FAILED, error=reason)
    except Exception as exc:
        logger.exception("Training run %s failed", run.pk)
        run.refresh_from_db()
        _log(run, f"Failed: {type(exc).__name__}: {exc}")
        _finish(run, TrainingRun.State.FAILED, error=f"{type(exc).__name__}: {exc}")
    run.refresh_from_db()
    return run


def _class_names(version: ClassifierVersion) -> list[str]:
    """A version's outputs named as snapshots name classes: the taxon, else the raw label."""
    return [
        label.taxon.scientific_name if label.taxon_id else label.name
        for label in version.labels.all()
    ]


def _project(
    probabilities: np.ndarray, version: ClassifierVersion, labels: list[str]
) -> np.ndarray:
    """The active version's probabilities in the snapshot's label space (by taxon name).

    A class the active version does not know gets probability 0 (it cannot find it); the rest
    is renormalised, so both models are scored on the same classes and the same photos.
    """
    names = _class_names(version)
    projected = np.zeros((len(probabilities), len(labels)), dtype=np.float64)
    for source, name in enumerate(names):
        if name in labels:
            projected[:, labels.index(name)] += probabilities[:, source]
    totals = projected.sum(axis=1, keepdims=True)
    uniform = np.full_like(projected, 1.0 / len(labels))
    return np.where(totals > 0, projected / np.where(totals > 0, totals, 1), uniform)


def _finish(run: TrainingRun, state: str, *, error: str = "") -> None:
    TrainingRun.objects.filter(pk=run.pk).update(
        state=state, finished_at=timezone.now(), error=error[:5000]
    )


def training_runs_sweep() -> list[int]:
    """Runs whose worker stopped answering are failed with the reason (never `running` forever).

    Queued runs whose message was lost (a broker outage when they were queued) are sent again;
    a duplicate message is harmless, as only one worker can move a run out of `queued`.
    """
    stale = timezone.now() - timedelta(seconds=settings.TRAINING_HEARTBEAT_TIMEOUT)
    for run_id in TrainingRun.objects.filter(
        state=TrainingRun.State.QUEUED, created_at__lt=timezone.now() - timedelta(minutes=10)
    ).values_list("pk", flat=True):
        _enqueue(run_id)
    lost = list(
        TrainingRun.objects.filter(state=TrainingRun.State.RUNNING)
        .filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))
        .values_list("pk", flat=True)
    )
    for run in TrainingRun.objects.filter(pk__in=lost):
        epoch = (run.progress or {}).get("epoch")
        reason = (
            f"The training worker stopped responding (killed or lost) "
            f"{'during epoch ' + str(epoch) if epoch else 'before the first epoch'}; "
            "start a new run resuming from this one's last checkpoint."
        )
        if TrainingRun.objects.filter(pk=run.pk, state=TrainingRun.State.RUNNING).update(
            state=TrainingRun.State.FAILED, finished_at=timezone.now(), error=reason
        ):
            _log(run, reason)
    return lost


def training_schedule_check() -> list[TrainingRun]:
    """Start a run for each campaign with enough newly confirmed photos since its last snapshot."""
    started = []
    for campaign in Campaign.objects.filter(is_active=True):
        if campaign.training_runs.filter(
            state__in=[TrainingRun.State.QUEUED, TrainingRun.State.RUNNING]
        ).exists():
            continue
        last = campaign.snapshots.order_by("-version").first()
        confirmed = Observation.objects.filter(
            campaign=campaign, status=Observation.Status.CONFIRMED
        )
        if last is not None:
            confirmed = confirmed.filter(decided_at__gt=last.created_at)
        new_photos = confirmed.aggregate(n=Count("photos"))["n"] or 0
        if new_photos < settings.TRAINING_AUTO_MIN_NEW_PHOTOS:
            continue
        try:
            run = training_run_create(
                campaign=campaign, parameters={"start_from": START_FROM_ACTIVE}
            )
        except RegistryError as exc:
            logger.info("No scheduled run for %s: %s", campaign, exc.detail)
            continue
        _log(
            run,
            f"Started by the schedule: {new_photos} newly confirmed photos since the last dataset.",
        )
        started.append(run)
    return started
