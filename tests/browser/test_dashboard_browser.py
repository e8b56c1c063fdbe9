"""An admin uses the dashboard in a real browser: the clustered map of sightings, a Darwin Core
Archive from the exports panel, the model cards' plots, and a training run's live progress."""

from __future__ import annotations

import re
import zipfile
from datetime import datetime, timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import expect

from classifier.engine.plots import confusion_matrix_png, training_curves_png
from classifier.models import (
    ClassifierLabel,
    ClassifierVersion,
    DatasetSnapshot,
    Prediction,
    PromotionEvent,
    TrainingRun,
)
from classifier.services.datasets import snapshot_create
from observations.models import Observation
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from observations.storage import named_storage
from tests.browser.conftest import open_context, screenshot, watch_errors
from tests.conftest import ORDESA
from tests.images import photo_upload

pytestmark = [pytest.mark.browser]

PASSWORD = "correct horse battery"  # tests.factories.UserFactory's
TAKEN = datetime(2026, 6, 1, 10, 30)
DWCA_FILES = {"meta.xml", "eml.xml", "occurrence.txt", "multimedia.txt"}


def sighting(seed: int, position: tuple[float, float]) -> Observation:
    return observation_submit(
        photos=[photo_upload(width=96, height=72, seed=seed)],
        latitude=position[0],
        longitude=position[1],
        accuracy_m=8,
        observed_at=TAKEN,
    ).observation


def sign_in(page, user, target: str = "/dashboard/") -> None:
    page.goto(f"/accounts/login/?next={target}")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(target) + "$"))


def registered(campaign, taxa, name: str, **fields) -> ClassifierVersion:
    """A version in the registry without a weights file (the pages never load it)."""
    version = ClassifierVersion.objects.create(
        name=name, campaign=campaign, backend="keras", architecture="xception", input_size=299,
        preprocessing={}, weights=f"classifiers/{name}.keras", weights_sha256="0" * 64, **fields,
    )  # fmt: skip
    ClassifierLabel.objects.bulk_create(
        ClassifierLabel(version=version, index=index, name=taxon.scientific_name, taxon=taxon)
        for index, taxon in enumerate(taxa)
    )
    return version


def top1(observation, version, taxon=None, label: str = "") -> None:
    Prediction.objects.create(
        observation=observation, version=version, rank=1, taxon=taxon,
        label=label or taxon.scientific_name, probability=0.7, tta="none",
    )  # fmt: skip


@pytest.fixture
def sightings(transactional_db, campaign, park, taxa, curator):
    """Six sightings within 150 m (a cluster) and two kilometres away; three confirmed, received
    over the last five weeks; two classifier versions' top-1 for the confirmed ones."""
    near = [sighting(index, (ORDESA[0] + index * 0.0002, ORDESA[1])) for index in range(6)]
    far_rejected = sighting(6, (ORDESA[0] + 0.03, ORDESA[1] + 0.04))
    far_waiting = sighting(7, (ORDESA[0] - 0.03, ORDESA[1] - 0.04))
    for observation, taxon in zip(near[:3], (taxa[1], taxa[1], taxa[3]), strict=True):
        review_decide(observation=observation, curator=curator, decision="confirm", taxon=taxon)
    review_decide(
        observation=far_rejected, curator=curator, decision="reject", reject_reason="other"
    )
    now = timezone.now()
    for observation, days in zip(
        [*near, far_rejected, far_waiting], (15, 22, 36, 9, 2, 0, 3, 30), strict=True
    ):
        Observation.objects.filter(pk=observation.pk).update(
            received_at=now - timedelta(days=days, hours=1)
        )
    older = registered(campaign, taxa, "DEEP-OC Ordesa")
    newer = registered(campaign, taxa, "xception · dataset v1")
    top1(near[0], older, taxa[1])
    top1(near[1], older, taxa[0])
    top1(near[2], older, taxa[3])
    top1(near[0], newer, taxa[1])
    top1(near[1], newer, taxa[1])
    top1(near[2], newer, label="Orchidaceae")
    return {
        "near": near,
        "rejected": far_rejected,
        "waiting": far_waiting,
        "older": older,
        "newer": newer,
    }


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_an_admin_sees_the_map_and_downloads_a_darwin_core_archive(
    chromium_browser, live_server, settings, transactional_db, sightings, admin_user, viewport
):
    context = open_context(chromium_browser, live_server, settings, viewport)
    page = context.new_page()
    errors = watch_errors(page)
    sign_in(page, admin_user)

    expect(page.locator("#map-status")).to_have_text("8 sightings.")
    markers = page.locator("#dashboard-map .leaflet-marker-icon")
    expect(markers.first).to_be_visible()
    # The six near ones are one cluster; the two far ones single markers coloured by status.
    expect(page.locator("#dashboard-map .dash-cluster")).to_have_count(1)
    expect(page.locator("#dashboard-map .dash-cluster")).to_contain_text("6")
    expect(page.locator("#dashboard-map .dash-marker")).to_have_count(2)
    colours = page.locator("#dashboard-map .dash-marker span").evaluate_all(
        "spans => spans.map(span => getComputedStyle(span).backgroundColor).sort()"
    )
    assert colours == ["rgb(164, 38, 44)", "rgb(29, 90, 140)"]  # rejected, received
    expect(page.locator("#map-legend")).to_contain_text("Confirmed 3")
    expect(page.locator("#figure-total")).to_have_text("8 sightings")
    expect(page.locator("#ai-vs-experts .dash-ai__summary")).to_have_text(["2 of 3", "2 of 3"])
    expect(page.locator("#chart-weeks .weeks__labels strong")).to_have_count(12)
    screenshot(page, f"{viewport}-dashboard-overview")

    # The legend hides a status; a marker opens its popup.
    page.locator("#map-legend label", has_text="Rejected").click()
    expect(page.locator("#dashboard-map .dash-marker")).to_have_count(1)
    page.locator("#dashboard-map .dash-marker").click()
    expect(page.locator(".leaflet-popup")).to_contain_text(
        f"Open sighting {str(sightings['waiting'].uuid)[:8]}"
    )

    # The Darwin Core Archive, exact positions, from the exports panel's button.
    page.locator("#exports").scroll_into_view_if_needed()
    page.get_by_label("Exact: the stored positions").check()
    with page.expect_download() as download_info:
        page.locator("#export-dwca").click()
    download = download_info.value
    assert re.fullmatch(r"parkwatch-dwca-\d{4}-\d{2}-\d{2}\.zip", download.suggested_filename)
    with zipfile.ZipFile(download.path()) as archive:
        assert set(archive.namelist()) >= DWCA_FILES
        occurrences = archive.read("occurrence.txt").decode().strip().splitlines()
        media = archive.read("multimedia.txt").decode().strip().splitlines()
    assert len(occurrences) == 1 + 3  # a header and the three confirmed sightings
    assert len(media) == 1 + 3
    assert page.url.endswith("/dashboard/")  # a download, not a navigation
    assert errors == []
    assert all(
        "/dashboard/" not in url and "/static/" not in url for url in context.blocked_requests
    )
    context.close()


@pytest.fixture
def registry(transactional_db, campaign, taxa, admin_user, sightings):
    """The older version active, the newer a candidate with its model card and plots, a
    dataset, two runs."""
    labels = [taxon.scientific_name for taxon in taxa]
    confusion = [[5, 1, 0, 0], [0, 6, 1, 0], [1, 0, 4, 0], [0, 0, 0, 3]]
    evaluation = {
        "labels": labels, "n": 21, "top1": 0.857, "top5": 1.0, "macro_precision": 0.86,
        "macro_recall": 0.86, "macro_f1": 0.855, "weighted_f1": 0.857, "nll": 0.38, "ece": 0.04,
        "per_class": [
            {"index": i, "label": label, "precision": 0.85, "recall": 0.86, "f1": 0.855,
             "support": sum(confusion[i])}
            for i, label in enumerate(labels)
        ],
        "confusion": confusion,
    }  # fmt: skip
    active, candidate = sightings["older"], sightings["newer"]
    PromotionEvent.objects.create(
        version=active, action="manual_promotion", reasons=["Imported"], user=admin_user
    )
    ClassifierVersion.objects.filter(pk=active.pk).update(
        state="active", metrics={"accuracy": 0.81, "val_accuracy": 0.78}
    )
    ClassifierVersion.objects.filter(pk=candidate.pk).update(
        metrics={"test": evaluation, "split": "test", "snapshot": 1}, temperature=1.2
    )
    candidate.refresh_from_db()
    storage = named_storage("models")
    history = {"loss": [1.3, 0.9, 0.6, 0.5], "val_loss": [1.4, 1.0, 0.8, 0.75],
               "accuracy": [0.5, 0.7, 0.8, 0.85], "val_accuracy": [0.45, 0.65, 0.75, 0.8]}  # fmt: skip
    plots = {
        "curves": storage.save(
            f"cards/version-{candidate.pk}-curves.png",
            ContentFile(training_curves_png(history, best_epoch=4)),
        ),
        "confusion": storage.save(
            f"cards/version-{candidate.pk}-confusion.png",
            ContentFile(confusion_matrix_png(confusion, labels)),
        ),
    }
    candidate.model_card = {
        "plots": plots,
        "training": {"parameters": {"architecture": "xception", "epochs": 4}, "best_epoch": 4},
    }
    candidate.save(update_fields=["model_card"])
    PromotionEvent.objects.create(
        version=candidate,
        previous=active,
        action="held",
        reasons=["macro-F1 0.855 is not higher than the active model's 0.870"],
    )
    snapshot = snapshot_create(campaign=campaign, created_by=admin_user)
    finished = TrainingRun.objects.create(
        campaign=campaign, snapshot=snapshot, state="succeeded", result_version=candidate,
        evaluation=evaluation, created_by=admin_user,
        parameters={"architecture": "xception", "image_size": 299, "epochs": 4,
                    "batch_size": 16, "learning_rate": 0.001, "start_from": "active",
                    "augmentation": {"h_flip": 0.5}, "class_weights": True},
        progress={"event": "epoch", "epoch": 4, "epochs": 4, "loss": 0.5, "accuracy": 0.85,
                  "val_loss": 0.75, "val_accuracy": 0.8},
        log="2026-06-10 10:00:00 Dataset v1: 2 train, 0 val, 0 test photos, 2 classes\n",
    )  # fmt: skip
    running = TrainingRun.objects.create(
        campaign=campaign, snapshot=snapshot, state="running", created_by=admin_user,
        parameters={"architecture": "mobilenet_v3_small", "image_size": 224, "epochs": 5,
                    "batch_size": 8, "learning_rate": 0.001, "start_from": "imagenet",
                    "augmentation": None, "class_weights": True},
        progress={"event": "step", "epoch": 1, "epochs": 5, "step": 4, "steps": 10,
                  "loss": 1.2, "accuracy": 0.4},
        log="2026-06-10 11:00:00 Dataset v1: 2 train, 0 val, 0 test photos, 2 classes\n",
    )  # fmt: skip
    assert DatasetSnapshot.objects.count() == 1
    return {"candidate": candidate, "finished": finished, "running": running}


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_an_admin_reads_the_model_cards_and_follows_a_training_run_live(
    chromium_browser, live_server, settings, transactional_db, registry, admin_user, viewport
):
    context = open_context(chromium_browser, live_server, settings, viewport)
    page = context.new_page()
    errors = watch_errors(page)
    sign_in(page, admin_user, "/dashboard/classifiers/")

    candidate = registry["candidate"]
    card = page.locator(f"#version-{candidate.pk}")
    top1 = card.locator(".dash-metrics li").first
    expect(top1.locator("span")).to_have_text("Top-1")
    expect(top1.locator("strong")).to_have_text("86%")
    card.locator("summary", has_text="Per-taxon precision").click()
    plots = card.locator(".dash-plot img")
    expect(plots).to_have_count(2)
    for index in range(2):
        plots.nth(index).scroll_into_view_if_needed()
        expect(plots.nth(index)).to_have_js_property("complete", True)
        assert plots.nth(index).evaluate("img => img.naturalWidth") > 100
    expect(page.locator("#promotion-history")).to_contain_text("held back by the gate")
    screenshot(page, f"{viewport}-dashboard-classifiers")

    running = registry["running"]
    page.goto("/dashboard/training/")
    article = page.locator(f"#run-{running.pk}")
    expect(article.locator('[data-role="headline"]')).to_have_text("Epoch 1 of 5 · step 4 of 10")
    expect(article.locator('[data-role="percent"]')).to_have_text("8%")
    screenshot(page, f"{viewport}-dashboard-training")

    # The worker reports; the page follows without a reload.
    TrainingRun.objects.filter(pk=running.pk).update(
        progress={
            "event": "epoch",
            "epoch": 3,
            "epochs": 5,
            "loss": 0.61,
            "accuracy": 0.77,
            "val_loss": 0.7,
            "val_accuracy": 0.72,
        },  # fmt: skip
        log=running.log + "2026-06-10 11:05:00 epoch 3/5: loss 0.6100\n",
    )
    expect(article.locator('[data-role="headline"]')).to_have_text("Epoch 3 of 5")
    expect(article.locator('[data-role="percent"]')).to_have_text("60%")
    expect(article.locator('[data-role="metrics"]')).to_contain_text("val. accuracy0.72")
    assert article.locator('[data-role="bar"]').get_attribute("aria-valuenow") == "60.0"

    TrainingRun.objects.filter(pk=running.pk).update(
        state="failed", error="ResourceExhaustedError: out of memory"
    )
    expect(article.locator('[data-role="state"]')).to_have_text("Failed")
    expect(article.locator('[data-role="error"]')).to_have_text(
        "ResourceExhaustedError: out of memory"
    )
    expect(article.locator('[data-role="finished"]')).to_be_visible()
    expect(article.locator('[data-role="cancel"]')).to_be_hidden()
    assert errors == []
    context.close()
