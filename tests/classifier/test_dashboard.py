"""The admins' dashboard pages: who may see them, the figures and map they show, the exports
panel, the AI against the experts from real predictions, training runs (start, cancel,
progress), dataset snapshots, manual promotion and roll-back, and the model cards' plots."""

from __future__ import annotations

import html as html_module
import re
from datetime import datetime, timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from classifier.engine.plots import confusion_matrix_png, training_curves_png
from classifier.models import (
    ClassifierLabel,
    ClassifierVersion,
    DatasetSnapshot,
    Prediction,
    PromotionEvent,
    TrainingRun,
)
from classifier.services.inference import classify_pending
from observations.models import Observation
from observations.services.review import review_decide
from observations.services.submission import observation_submit
from observations.storage import named_storage
from tests.classifier.support import register_tiny_classifier
from tests.conftest import ORDESA
from tests.images import photo_upload

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("dashboard:overview")
CLASSIFIERS = reverse("dashboard:classifiers")
TRAINING = reverse("dashboard:training")
MAP = reverse("dashboard:map")
PAGES = [OVERVIEW, CLASSIFIERS, TRAINING]
_seeds = iter(range(20_000, 100_000))


def text_of(response) -> str:
    content = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", content)).split())


def section_text(response, element_id: str) -> str:
    content = response.content.decode()
    start = content.index(f'id="{element_id}"')
    end = content.find("</section>", start)
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", content[start:end])).split())


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def submitted(*, position=ORDESA, observed=datetime(2026, 6, 1, 10, 30)) -> Observation:
    return observation_submit(
        photos=[photo_upload(width=64, height=48, seed=next(_seeds))],
        latitude=position[0],
        longitude=position[1],
        accuracy_m=10,
        observed_at=observed,
    ).observation


def confirmed(curator, taxon, **options) -> Observation:
    observation = submitted(**options)
    review_decide(observation=observation, curator=curator, decision="confirm", taxon=taxon)
    observation.refresh_from_db()
    return observation


def bare_version(campaign, name: str, taxa, **fields) -> ClassifierVersion:
    """A registered version without a real weights file (nothing here loads it)."""
    version = ClassifierVersion.objects.create(
        name=name,
        campaign=campaign,
        backend=ClassifierVersion.Backend.KERAS,
        architecture="xception",
        input_size=299,
        preprocessing={},
        weights=f"classifiers/{name}.keras",
        weights_sha256="0" * 64,
        **fields,
    )
    ClassifierLabel.objects.bulk_create(
        ClassifierLabel(version=version, index=index, name=taxon.scientific_name, taxon=taxon)
        for index, taxon in enumerate(taxa)
    )
    return version


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


# --- who may see it ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", PAGES)
def test_the_pages_are_for_admins_only(client, url, visitor, curator, admin_user, campaign):
    anonymous = client.get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"{reverse('login')}?next={url}"

    for user in (visitor, curator):
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == 403
        assert "Admins only" in text_of(response)

    client.force_login(admin_user)
    assert client.get(url).status_code == 200


def test_the_data_endpoints_answer_403_to_all_but_admins(client, visitor, curator, campaign, taxa):
    version = bare_version(campaign, "carded", taxa, model_card={"plots": {"curves": "x.png"}})
    run = TrainingRun.objects.create(
        campaign=campaign,
        snapshot=DatasetSnapshot.objects.create(campaign=campaign, version=1),
    )
    urls = [
        MAP,
        reverse("dashboard:training-progress", kwargs={"pk": run.pk}),
        reverse("dashboard:plot", kwargs={"pk": version.pk, "kind": "curves"}),
    ]
    for user in (None, visitor, curator):
        if user is not None:
            client.force_login(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 403, (user, url)
            assert response.json()["error"] == "forbidden"


def test_curators_cannot_promote_roll_back_train_cancel_or_freeze(client, curator, campaign, taxa):
    version = bare_version(campaign, "candidate", taxa)
    run = TrainingRun.objects.create(
        campaign=campaign,
        snapshot=DatasetSnapshot.objects.create(campaign=campaign, version=1),
    )
    client.force_login(curator)
    posts = [
        (reverse("dashboard:promote", kwargs={"pk": version.pk}), {f"v{version.pk}-reason": "x"}),
        (reverse("dashboard:rollback"), {"campaign": campaign.pk}),
        (reverse("dashboard:training-start"), {"campaign": campaign.pk}),
        (reverse("dashboard:training-cancel", kwargs={"pk": run.pk}), {}),
        (reverse("dashboard:snapshot-freeze"), {"campaign": campaign.pk}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    version.refresh_from_db()
    run.refresh_from_db()
    assert version.state == ClassifierVersion.State.CANDIDATE
    assert run.state == TrainingRun.State.QUEUED and not run.cancel_requested
    assert not PromotionEvent.objects.exists()
    assert DatasetSnapshot.objects.count() == 1 and TrainingRun.objects.count() == 1


def test_an_anonymous_post_goes_to_sign_in_and_back_to_the_dashboard(client, campaign):
    response = client.post(reverse("dashboard:snapshot-freeze"), {"campaign": campaign.pk})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={OVERVIEW}"
    assert not DatasetSnapshot.objects.exists()


# --- overview ---------------------------------------------------------------------------------


@pytest.fixture
def sightings(campaign, park, taxa, curator):
    """Two confirmed (one sensitive orchid), one rejected, two waiting for review."""
    orchid = confirmed(curator, taxa[3])
    knotweed = confirmed(curator, taxa[1])
    rejected = submitted()
    review_decide(observation=rejected, curator=curator, decision="reject", reject_reason="other")
    waiting = [submitted(), submitted()]
    Observation.objects.filter(pk=waiting[0].pk).update(
        received_at=timezone.now() - timedelta(days=3, hours=2)
    )
    return {"orchid": orchid, "knotweed": knotweed, "waiting": waiting}


def test_the_overview_shows_the_figures_backlog_and_control(admin_client, sightings):
    response = admin_client.get(OVERVIEW)
    assert response.status_code == 200
    page = text_of(response)
    assert "5 sightings" in page
    assert "2 not decided yet" in page
    assert "1 open control case" in page  # the knotweed; the orchid is not invasive
    status = section_text(response, "chart-status")
    assert "Received 2" in status and "Confirmed 2" in status and "Rejected 1" in status
    taxa = section_text(response, "chart-taxa")
    assert "Cypripedium calceolus 1" in taxa and "Reynoutria japonica invasive 1" in taxa
    assert "Ordesa y Monte Perdido 5 (2 confirmed)" in section_text(response, "chart-parks")
    monday = timezone.localdate() - timedelta(days=timezone.localdate().weekday())
    this_week = Observation.objects.filter(received_at__date__gte=monday).count()
    assert this_week in (4, 5)  # the one received 3 days ago may fall in last week
    weeks = response.context["weeks"]
    assert (weeks[-1]["week"], weeks[-1]["n"], weeks[-1]["confirmed"]) == (monday, this_week, 2)
    # The chart's text for screen readers ends with the current week.
    assert f'week of {monday.day} {monday:%b} {this_week}"' in response.content.decode()
    backlog = section_text(response, "backlog")
    assert "2 sightings not decided yet; the oldest has waited 3 days, 2 hours" in backlog
    assert "Under a day 1 1–3 days 0 3–7 days 1 1–4 weeks 0 Over 4 weeks 0" in backlog
    first = str(sightings["waiting"][0].uuid)
    assert f'href="/review/{first}/"' in response.content.decode()
    control = section_text(response, "control")
    assert "1 open case" in control and "Reynoutria japonica" in control
    # The map's data comes from the admins' endpoint; its colours are in the page's config.
    config = response.context["map_config"]
    assert config["dataUrl"] == MAP
    assert {item["status"] for item in config["statuses"]} >= {"confirmed", "received"}
    assert config["parks"][0]["name"] == "Ordesa y Monte Perdido"


def test_the_exports_panel_sends_its_filters_to_the_three_export_endpoints(
    admin_client, sightings, park
):
    response = admin_client.get(OVERVIEW)
    content = response.content.decode()
    assert '<form method="get" action="/api/v1/exports/csv/" id="export-form"' in content
    start = content.index('id="export-form"')
    form = content[start : content.index("</form>", start)]
    for name in ("csv", "geojson", "dwca"):
        assert f'formaction="/api/v1/exports/{name}/"' in form
        assert f'id="export-{name}"' in form
    for field in ("campaign", "park", "taxon", "since", "until", "invasive_only"):
        assert f'name="{field}"' in form
    assert re.search(r'name="positions" value="public"[^>]*checked', form)
    assert 'name="positions" value="exact"' in form
    assert f'<option value="{park.slug}">' in form
    assert 'type="date"' in form

    # What the form sends is what the export API understands (session auth, admins).
    exported = admin_client.get(
        "/api/v1/exports/csv/",
        {"campaign": "", "park": park.slug, "taxon": "", "since": "", "until": "",
         "invasive_only": "1", "positions": "exact"},
    )  # fmt: skip
    assert exported.status_code == 200
    rows = b"".join(exported.streaming_content).decode().strip().splitlines()
    assert len(rows) == 2  # the header and the knotweed (the orchid is not invasive)
    assert "Reynoutria japonica" in rows[1]


def test_the_overview_makes_the_same_queries_however_many_sightings(
    admin_client, campaign, taxa, curator, django_assert_max_num_queries
):
    version = bare_version(campaign, "v", taxa)

    def add(count: int) -> None:
        for index in range(count):
            observation = Observation.objects.create(
                campaign=campaign,
                latitude=ORDESA[0],
                longitude=ORDESA[1],
                position_source="exif",
                observed_at=timezone.now(),
                status=Observation.Status.CONFIRMED if index % 2 else Observation.Status.CLASSIFIED,
                final_taxon=taxa[index % 3] if index % 2 else None,
                control_status="reported" if index % 2 else "",
                decided_at=timezone.now() if index % 2 else None,
            )
            Prediction.objects.create(
                observation=observation,
                version=version,
                rank=1,
                taxon=taxa[(index + 1) % 3],
                label="x",
                probability=0.5,
                tta="none",
            )

    add(4)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(OVERVIEW)
    add(40)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(OVERVIEW)
    assert len(few.captured_queries) <= 25
    assert "44 sightings" in text_of(response)


def test_the_map_json_has_exact_positions_and_statuses(admin_client, sightings):
    response = admin_client.get(MAP)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    data = response.json()
    assert data["type"] == "FeatureCollection" and data["total"] == 5
    features = {feature["properties"]["uuid"]: feature for feature in data["features"]}
    orchid = sightings["orchid"]
    feature = features[str(orchid.uuid)]
    # A sensitive taxon: the admins' map shows the stored position, not a 0.1 degree cell.
    assert feature["geometry"]["coordinates"] == [orchid.longitude, orchid.latitude]
    assert round(orchid.latitude, 1) != orchid.latitude
    assert feature["properties"]["status"] == "confirmed"
    assert feature["properties"]["taxon"] == "Cypripedium calceolus"
    assert sorted(f["properties"]["status"] for f in data["features"]) == [
        "confirmed",
        "confirmed",
        "received",
        "received",
        "rejected",
    ]


def test_the_map_json_follows_the_campaign_filter(admin_client, sightings):
    from tests.factories import CampaignFactory

    other = CampaignFactory(name="Conus", slug="conus")
    assert admin_client.get(MAP, {"campaign": "conus"}).json()["total"] == 0
    assert admin_client.get(MAP, {"campaign": ""}).json()["total"] == 5
    response = admin_client.get(OVERVIEW, {"campaign": "conus"})
    assert response.context["map_config"]["dataUrl"] == f"{MAP}?campaign=conus"
    assert response.context["campaign"] == other
    assert "0 sightings" in text_of(response)


def test_a_campaign_filter_with_a_nul_character_is_no_filter(admin_client, sightings):
    # PostgreSQL refuses NUL in a query: the filter must not reach it.
    assert admin_client.get(MAP, {"campaign": "ordesa\x00"}).json()["total"] == 5
    assert admin_client.get(OVERVIEW, {"campaign": "ordesa\x00"}).status_code == 200


def test_the_ai_against_the_experts_from_real_predictions(
    admin_client, campaign, taxa, curator, tmp_path
):
    register_tiny_classifier(campaign, tmp_path)
    observations = [submitted() for _ in range(4)]
    classify_pending(hint_ids=[observation.pk for observation in observations])
    tops = {
        row.observation_id: row.taxon
        for row in Prediction.objects.filter(photo=None, rank=1).select_related("taxon")
    }
    assert len(tops) == 4
    # The experts agree with the AI on two and correct it on the other two.
    truth = {}
    for index, observation in enumerate(observations):
        ai = tops[observation.pk]
        taxon = ai if index < 2 else next(t for t in taxa if t != ai)
        review_decide(observation=observation, curator=curator, decision="confirm", taxon=taxon)
        truth[observation.pk] = taxon

    response = admin_client.get(OVERVIEW)
    (item,) = response.context["ai"]
    assert (item["confirmed"], item["matched"]) == (4, 2)
    summary = section_text(response, "ai-vs-experts")
    assert "top-1 matched the experts on 2 of 4 confirmed sightings (50%)" in summary
    diagonal = sum(cell["n"] for row in item["matrix"] for cell in row["cells"] if cell["diagonal"])
    assert diagonal == 2
    for row in item["per_taxon"]:
        expected = sum(1 for taxon in truth.values() if taxon == row["taxon"])
        assert row["confirmed"] == expected


# --- classifiers: model cards, promotion, roll-back, plots -------------------------------------


EVALUATION = {
    "labels": ["Buddleja davidii", "Reynoutria japonica"],
    "n": 12,
    "top1": 0.8333,
    "top5": 1.0,
    "macro_precision": 0.84,
    "macro_recall": 0.83,
    "macro_f1": 0.8312,
    "weighted_f1": 0.83,
    "nll": 0.41,
    "ece": 0.05,
    "per_class": [
        {
            "index": 0,
            "label": "Buddleja davidii",
            "precision": 0.8,
            "recall": 0.857,
            "f1": 0.828,
            "support": 7,
        },
        {
            "index": 1,
            "label": "Reynoutria japonica",
            "precision": 0.875,
            "recall": 0.8,
            "f1": 0.8363,
            "support": 5,
        },
    ],  # fmt: skip
    "confusion": [[6, 1], [1, 4]],
}


@pytest.fixture
def carded(campaign, taxa):
    """A trained candidate with a full model card and its two plots in the models storage."""
    version = bare_version(
        campaign,
        "xception · dataset v2",
        taxa[:2],
        metrics={"test": EVALUATION, "split": "test", "snapshot": 2},
        temperature=1.3,
    )
    storage = named_storage("models")
    curves = storage.save(
        f"cards/version-{version.pk}-curves.png",
        ContentFile(training_curves_png({"loss": [1.0, 0.6], "val_loss": [1.1, 0.7]})),
    )
    matrix = storage.save(
        f"cards/version-{version.pk}-confusion.png",
        ContentFile(confusion_matrix_png(EVALUATION["confusion"], EVALUATION["labels"])),
    )
    version.model_card = {
        "plots": {"curves": curves, "confusion": matrix},
        "training": {"parameters": {"architecture": "xception", "epochs": 15}, "best_epoch": 9},
    }
    version.save(update_fields=["model_card"])
    return version


def test_the_classifiers_page_shows_model_cards(admin_client, carded):
    response = admin_client.get(CLASSIFIERS)
    card = section_text(response, f"campaign-{carded.campaign.slug}")
    assert f"{carded.label} Candidate" in card
    assert "Top-1 83% Top-5 100% Macro-F1 83%" in card
    assert (
        "On the test split of dataset v2 (12 photos) · NLL 0.410 · ECE 0.050 · best epoch 9" in card
    )
    assert "Buddleja davidii 0.80 0.86 0.83 7" in card
    assert "Reynoutria japonica 0.88 0.80 0.84 5" in card
    content = response.content.decode()
    for kind in ("curves", "confusion"):
        assert f'src="/dashboard/classifiers/{carded.pk}/plots/{kind}.png"' in content
    assert "architecture xception" in card and "epochs 15" in card


def test_the_plots_view_serves_the_cards_png_to_admins_only(client, admin_user, curator, carded):
    url = reverse("dashboard:plot", kwargs={"pk": carded.pk, "kind": "confusion"})
    client.force_login(curator)
    assert client.get(url).status_code == 403
    client.force_login(admin_user)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\x89PNG\r\n\x1a\n")
    assert body == named_storage("models").open(carded.model_card["plots"]["confusion"]).read()


def test_the_plots_view_serves_only_what_the_card_names(admin_client, carded, campaign, taxa):
    missing = reverse("dashboard:plot", kwargs={"pk": carded.pk, "kind": "roc"})
    assert admin_client.get(missing).status_code == 404
    gone = bare_version(campaign, "gone", taxa, model_card={"plots": {"curves": "cards/none.png"}})
    url = reverse("dashboard:plot", kwargs={"pk": gone.pk, "kind": "curves"})
    assert admin_client.get(url).status_code == 404
    # Names come from the card, never the address: nothing else in the storage is reachable.
    assert (
        admin_client.get(f"/dashboard/classifiers/{carded.pk}/plots/..%2Fsecret.png").status_code
        == 404
    )


def test_promote_by_hand_and_roll_back_are_recorded_with_their_reasons(
    admin_client, admin_user, campaign, taxa
):
    first = bare_version(campaign, "first", taxa)
    second = bare_version(campaign, "second", taxa)

    def promote(version, reason):
        return admin_client.post(
            reverse("dashboard:promote", kwargs={"pk": version.pk}),
            {f"v{version.pk}-reason": reason},
            follow=True,
        )

    response = promote(first, "The imported DEEP-OC model")
    assert f"{first.label} is now the active classifier" in " ".join(messages_of(response))
    response = promote(second, "Better recall on knotweed")
    assert response.status_code == 200
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == ("retired", "active")
    event = PromotionEvent.objects.order_by("-created_at", "-pk").first()
    assert (event.action, event.version, event.previous, event.user) == (
        PromotionEvent.Action.MANUAL_PROMOTION,
        second,
        first,
        admin_user,
    )
    assert event.reasons == ["Better recall on knotweed"]
    assert f"Roll back to {first.label}" in text_of(response)

    response = admin_client.post(
        reverse("dashboard:rollback"), {"campaign": campaign.pk}, follow=True
    )
    assert f"Rolled back: {first.label} is active again (was {second.label})." in messages_of(
        response
    )
    first.refresh_from_db()
    assert first.state == "active"
    rollback = PromotionEvent.objects.order_by("-created_at", "-pk").first()
    assert (rollback.action, rollback.version, rollback.previous, rollback.user) == (
        PromotionEvent.Action.ROLLBACK,
        first,
        second,
        admin_user,
    )
    history = section_text(response, "promotion-history")
    assert history.count("promoted by hand") == 2 and "rolled back" in history
    assert "Better recall on knotweed" in history and f"Rolled back from {second.label}." in history
    assert history.index("rolled back") < history.index("Better recall on knotweed")  # newest first


def test_a_promotion_needs_a_reason_and_a_refusal_is_shown(admin_client, campaign, taxa):
    version = bare_version(campaign, "candidate", taxa)
    url = reverse("dashboard:promote", kwargs={"pk": version.pk})
    response = admin_client.post(url, {f"v{version.pk}-reason": ""})
    assert response.status_code == 400
    assert f"{version.label} was not promoted: say why first." in messages_of(response)
    assert "This field is required." in section_text(response, f"campaign-{campaign.slug}")

    unlabelled = ClassifierVersion.objects.create(
        name="no labels", campaign=campaign, backend="keras", input_size=32, preprocessing={},
        weights="classifiers/x.keras", weights_sha256="0" * 64,
    )  # fmt: skip
    response = admin_client.post(
        reverse("dashboard:promote", kwargs={"pk": unlabelled.pk}),
        {f"v{unlabelled.pk}-reason": "try"},
        follow=True,
    )
    assert f"{unlabelled.label}: This version has no labels." in messages_of(response)
    assert not PromotionEvent.objects.exists()

    response = admin_client.post(
        reverse("dashboard:rollback"), {"campaign": campaign.pk}, follow=True
    )
    assert "No active classifier to roll back from." in messages_of(response)


# --- training: start, progress, cancel; datasets -------------------------------------------------


@pytest.fixture
def confirmed_pool(campaign, curator, taxa):
    """Two confirmed sightings of each of two taxa: enough to train on."""
    return [confirmed(curator, taxa[index % 2]) for index in range(4)]


def test_the_form_queues_a_run_with_its_parameters_and_trains_nothing(
    admin_client, admin_user, campaign, confirmed_pool, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            reverse("dashboard:training-start"),
            {
                "campaign": campaign.pk,
                "architecture": "mobilenet_v3_small",
                "start_from": "scratch",
                "image_size": 224,
                "epochs": 3,
                "batch_size": 8,
                "learning_rate": 0.01,
                "backbone_learning_rate": "0.001",
                "class_weights": "",
                "snapshot": "",
                # augmentation unticked: not sent
            },
        )
    run = TrainingRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{TRAINING}#run-{run.pk}"
    assert len(callbacks) == 1  # the message to the training worker, after the commit
    assert run.state == TrainingRun.State.QUEUED and run.started_at is None
    assert run.created_by == admin_user and run.campaign == campaign
    parameters = run.parameters
    assert {key: parameters[key] for key in (
        "architecture", "image_size", "epochs", "batch_size", "learning_rate",
        "backbone_learning_rate", "augmentation", "class_weights", "start_from",
    )} == {
        "architecture": "mobilenet_v3_small", "image_size": 224, "epochs": 3, "batch_size": 8,
        "learning_rate": 0.01, "backbone_learning_rate": 0.001, "augmentation": None,
        "class_weights": False, "start_from": "scratch",
    }  # fmt: skip
    snapshot = run.snapshot
    assert snapshot.version == 1 and sorted(snapshot.labels) == [
        "Buddleja davidii",
        "Reynoutria japonica",
    ]

    page = admin_client.get(TRAINING)
    runs = section_text(page, "runs")
    assert f"Run {run.pk} Queued" in runs
    assert "mobilenet_v3_small at 224 px · 3 epochs of batches of 8" in runs
    assert "Waiting for the training worker" in runs
    assert (
        f'data-progress-url="/dashboard/training/{run.pk}/progress.json"' in page.content.decode()
    )


def test_the_form_defaults_are_xception_with_augmentation_and_class_weights(admin_client, campaign):
    form = admin_client.get(TRAINING).context["form"]
    assert form["architecture"].value() == "xception"
    assert form["start_from"].value() == "active"
    assert form["augmentation"].value() is True and form["class_weights"].value() is True
    assert [value for value, _ in form.fields["architecture"].choices] == [
        "xception",
        "mobilenet_v3_small",
        "efficientnet_b0",
        "resnet50",
        "small_cnn",
    ]
    assert [value for value, _ in form.fields["start_from"].choices] == [
        "active",
        "imagenet",
        "scratch",
    ]


def test_a_refused_run_is_explained_at_the_form(admin_client, campaign, confirmed_pool, taxa):
    base = {
        "campaign": campaign.pk,
        "architecture": "xception",
        "start_from": "imagenet",
        "image_size": 299,
        "epochs": 15,
        "batch_size": 16,
        "learning_rate": 0.001,
        "augmentation": "on",
        "class_weights": "on",
    }
    response = admin_client.post(reverse("dashboard:training-start"), {**base, "epochs": 0})
    assert response.status_code == 400
    assert "Ensure this value is greater than or equal to 1." in section_text(response, "start-run")

    # The service's own check: Xception needs at least 71 px.
    response = admin_client.post(reverse("dashboard:training-start"), {**base, "image_size": 32})
    assert response.status_code == 400
    assert "image_size must be at least 71 for xception" in section_text(response, "start-run")
    assert not TrainingRun.objects.exists()


def test_a_run_needs_two_taxa_to_learn(admin_client, campaign, curator, taxa):
    confirmed(curator, taxa[0])
    response = admin_client.post(
        reverse("dashboard:training-start"),
        {"campaign": campaign.pk, "architecture": "small_cnn", "start_from": "scratch",
         "image_size": 32, "epochs": 1, "batch_size": 2, "learning_rate": 0.01},
    )  # fmt: skip
    assert response.status_code == 400
    assert "The dataset needs photos of at least two taxa in its train split." in section_text(
        response, "start-run"
    )
    assert not TrainingRun.objects.exists()


@pytest.fixture
def snapshot(campaign):
    return DatasetSnapshot.objects.create(campaign=campaign, version=1, labels=["a", "b"])


def test_cancel_stops_a_queued_run_at_once_and_asks_a_running_one(admin_client, campaign, snapshot):
    queued = TrainingRun.objects.create(campaign=campaign, snapshot=snapshot)
    running = TrainingRun.objects.create(
        campaign=campaign, snapshot=snapshot, state=TrainingRun.State.RUNNING
    )
    response = admin_client.post(
        reverse("dashboard:training-cancel", kwargs={"pk": queued.pk}), follow=True
    )
    assert f"Training run {queued.pk} cancelled." in messages_of(response)
    queued.refresh_from_db()
    assert queued.state == TrainingRun.State.CANCELLED and queued.finished_at is not None

    response = admin_client.post(
        reverse("dashboard:training-cancel", kwargs={"pk": running.pk}), follow=True
    )
    assert f"Training run {running.pk} stops at its next step." in messages_of(response)
    running.refresh_from_db()
    assert running.state == TrainingRun.State.RUNNING and running.cancel_requested
    assert "cancelling at the next step" in section_text(response, "runs")

    response = admin_client.post(
        reverse("dashboard:training-cancel", kwargs={"pk": queued.pk}), follow=True
    )
    assert f"Training run {queued.pk} had already cancelled." in messages_of(response)


def test_progress_json_has_the_bar_epoch_step_loss_and_metrics(admin_client, campaign, snapshot):
    run = TrainingRun.objects.create(
        campaign=campaign,
        snapshot=snapshot,
        state=TrainingRun.State.RUNNING,
        progress={"event": "epoch", "epoch": 3, "epochs": 5, "step": 10, "steps": 10,
                  "loss": 0.4321, "accuracy": 0.875, "val_loss": 0.5, "val_accuracy": 0.8},
        log="2026-06-10 10:00:00 epoch 3/5: loss 0.4321\n",
    )  # fmt: skip
    response = admin_client.get(reverse("dashboard:training-progress", kwargs={"pk": run.pk}))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    data = response.json()
    assert (data["state"], data["active"], data["percent"], data["width"]) == (
        "running",
        True,
        60.0,
        "60.0",
    )
    assert (data["epoch"], data["epochs"]) == (3, 5)
    assert data["headline"] == "Epoch 3 of 5"
    assert {metric["key"]: metric["value"] for metric in data["metrics"]} == {
        "loss": "0.4321",
        "accuracy": "0.875",
        "val_loss": "0.5",
        "val_accuracy": "0.8",
    }
    assert data["log_tail"] == "2026-06-10 10:00:00 epoch 3/5: loss 0.4321"

    page = section_text(admin_client.get(TRAINING), "runs")
    assert "60% Epoch 3 of 5 loss 0.4321 accuracy 0.875 val. loss 0.5 val. accuracy 0.8" in page
    assert (
        admin_client.get(reverse("dashboard:training-progress", kwargs={"pk": 999})).status_code
        == 404
    )


def test_a_finished_run_shows_its_version_and_the_gates_decision(
    admin_client, campaign, snapshot, carded
):
    run = TrainingRun.objects.create(
        campaign=campaign,
        snapshot=snapshot,
        state=TrainingRun.State.SUCCEEDED,
        result_version=carded,
        evaluation=EVALUATION,
        progress={"event": "epoch", "epoch": 15, "epochs": 15},
    )
    PromotionEvent.objects.create(
        version=carded,
        action=PromotionEvent.Action.HELD,
        reasons=["macro-F1 0.831 is not higher than the active model's 0.850"],
    )
    runs = section_text(admin_client.get(TRAINING), "runs")
    assert f"Run {run.pk} Succeeded" in runs and "100% Epoch 15 of 15" in runs
    assert f"Result: {carded.label} · top-1 83% · macro-F1 0.831 · held back by the gate" in runs
    assert "is not higher than the active model's 0.850" in runs


def test_freeze_a_snapshot_and_see_its_counts_per_taxon_and_split(
    admin_client, admin_user, campaign, confirmed_pool
):
    response = admin_client.post(
        reverse("dashboard:snapshot-freeze"), {"campaign": campaign.pk}, follow=True
    )
    snapshot = DatasetSnapshot.objects.get()
    assert (snapshot.version, snapshot.created_by) == (1, admin_user)
    assert f"Dataset v1 of {campaign.name} frozen: 4 photos of 2 taxa." in messages_of(response)
    datasets = section_text(response, "snapshots")
    assert "Invasive plants of Ordesa: dataset v1 · 4 photos of 2 taxa" in datasets
    assert "Taxon Train Val Test Total" in datasets
    assert "Buddleja davidii 2 0 0 2" in datasets and "Reynoutria japonica 2 0 0 2" in datasets
    assert "All 4 0 0 4" in datasets

    admin_client.post(reverse("dashboard:snapshot-freeze"), {"campaign": campaign.pk})
    assert list(DatasetSnapshot.objects.values_list("version", flat=True)) == [2, 1]


def test_freezing_nothing_is_refused_with_the_reason(admin_client, campaign):
    response = admin_client.post(
        reverse("dashboard:snapshot-freeze"), {"campaign": campaign.pk}, follow=True
    )
    assert "Nothing to train on yet: no confirmed sightings and no imported images." in messages_of(
        response
    )
    assert not DatasetSnapshot.objects.exists()


def test_the_classifiers_and_training_pages_make_the_same_queries_however_many_rows(
    admin_client, campaign, taxa, snapshot, django_assert_max_num_queries
):
    def add(count: int) -> None:
        for _ in range(count):
            version = bare_version(campaign, "v", taxa, model_card={"plots": {"curves": "c.png"}})
            PromotionEvent.objects.create(version=version, action="held", reasons=["worse"])
            TrainingRun.objects.create(
                campaign=campaign,
                snapshot=snapshot,
                state=TrainingRun.State.SUCCEEDED,
                result_version=version,
                parameters={"architecture": "xception", "epochs": 2},
            )

    add(1)
    counts = {}
    for url in (CLASSIFIERS, TRAINING):
        with CaptureQueriesContext(connection) as queries:
            admin_client.get(url)
        counts[url] = len(queries.captured_queries)
    add(5)
    for url in (CLASSIFIERS, TRAINING):
        with django_assert_max_num_queries(counts[url]):
            response = admin_client.get(url)
        assert response.status_code == 200
    assert text_of(admin_client.get(CLASSIFIERS)).count("held back by the gate") == 6
