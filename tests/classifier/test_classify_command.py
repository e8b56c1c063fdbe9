"""`classify`: a folder of photos through a registered classifier, top 5 per photo to CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from classifier.engine.backends.keras import KerasBackend
from classifier.engine.preprocessing import PreprocessSpec
from classifier.models import ClassifierVersion, Prediction
from classifier.services.registry import version_activate, version_load, version_register
from observations.models import Observation
from tests.classifier.support import TINY_SIZE, tiny_keras_file
from tests.images import make_photo

pytestmark = pytest.mark.django_db

# Four of the campaign's taxa and two raw labels (no taxon), so the top 5 is never the whole list.
ACTIVE_LABELS = [
    "Ailanthus altissima",
    "Buddleja_davidii",
    "Cypripedium calceolus",
    "Reynoutria japonica",
    "Moss (unidentified)",
    "Not a plant",
]


@pytest.fixture(autouse=True)
def _models_storage(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "models": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "models"), "base_url": None},
        },
    }


def register(
    campaign, tmp_path: Path, labels: list[str], *, seed: int, activate: bool
) -> ClassifierVersion:
    weights = tiny_keras_file(tmp_path / f"model-{seed}.keras", len(labels), seed=seed)
    version = version_register(
        name=f"Tiny {seed}",
        campaign=campaign,
        backend=ClassifierVersion.Backend.KERAS,
        weights_path=weights,
        labels=labels,
        spec=PreprocessSpec.xception(TINY_SIZE),
    )
    return version_activate(version=version) if activate else version


@pytest.fixture
def active(campaign, tmp_path):
    return register(campaign, tmp_path, ACTIVE_LABELS, seed=1, activate=True)


@pytest.fixture
def candidate(campaign, tmp_path):
    """A version that is not active, with fewer than five classes."""
    return register(
        campaign,
        tmp_path,
        ["Ailanthus altissima", "Buddleja davidii", "Other"],
        seed=2,
        activate=False,
    )


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    folder = tmp_path / "field-trip"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(make_photo("JPEG", width=120, height=90, seed=1))
    # The content decides the type, never the name: a PNG without an extension is a photo...
    (folder / "b").write_bytes(make_photo("PNG", width=80, height=100, seed=2))
    (folder / "c.heic").write_bytes(make_photo("HEIF", width=64, height=64, seed=3))
    # ...and a text file named .jpg is not.
    (folder / "broken.jpg").write_text("these are my field notes, not a photo")
    return folder


def classify(folder: Path, out: Path, *args: str) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("classify", str(folder), "--out", str(out), *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_it_writes_the_top_5_of_each_photo_and_reports_the_file_it_cannot_read(
    active, photo_folder, tmp_path
):
    out = tmp_path / "results.csv"

    stdout, stderr = classify(photo_folder, out)

    header, rows = read_csv(out)
    ranks = [f"rank{r}_{c}" for r in range(1, 6) for c in ("label", "taxon", "probability")]
    assert header == ["file", *ranks, "model_version"]
    assert [row["file"] for row in rows] == ["a.jpg", "b", "c.heic"]
    assert "Skipped broken.jpg: a text file, not a JPEG, PNG, WebP or HEIC photo" in stderr
    assert "Classified 3 photos" in stdout and "skipped 1 file" in stdout

    classifier = version_load(active)
    expected = classifier.predict_images(
        [classifier.decode(photo_folder / row["file"]) for row in rows]
    )
    taxa = {
        "Ailanthus altissima": "Ailanthus altissima",
        "Buddleja_davidii": "Buddleja davidii",
        "Cypripedium calceolus": "Cypripedium calceolus",
        "Reynoutria japonica": "Reynoutria japonica",
    }
    for row, probabilities in zip(rows, expected, strict=True):
        assert row["model_version"] == active.label
        got = [float(row[f"rank{r}_probability"]) for r in range(1, 6)]
        assert got == sorted(got, reverse=True)
        best = np.argsort(-probabilities, kind="stable")[:5]
        assert [row[f"rank{r}_label"] for r in range(1, 6)] == [ACTIVE_LABELS[i] for i in best]
        np.testing.assert_allclose(got, probabilities[best], atol=1e-6)
        # The taxon's scientific name when the label maps to one; empty for a raw label.
        assert [row[f"rank{r}_taxon"] for r in range(1, 6)] == [
            taxa.get(ACTIVE_LABELS[i], "") for i in best
        ]


def test_it_uses_the_version_it_is_given_even_when_not_active(
    active, candidate, photo_folder, tmp_path
):
    out = tmp_path / "candidate.csv"

    classify(photo_folder, out, "--version", str(candidate.pk))

    header, rows = read_csv(out)
    # Three classes: three ranks, not five.
    assert header[1:-1] == [
        f"rank{r}_{c}" for r in range(1, 4) for c in ("label", "taxon", "probability")
    ]
    assert len(rows) == 3
    assert {row["model_version"] for row in rows} == {candidate.label}
    for row in rows:
        assert {row[f"rank{r}_label"] for r in range(1, 4)} == {
            "Ailanthus altissima",
            "Buddleja davidii",
            "Other",
        }
        assert sum(float(row[f"rank{r}_probability"]) for r in range(1, 4)) == pytest.approx(
            1, abs=1e-5
        )
    candidate.refresh_from_db()
    assert candidate.state == ClassifierVersion.State.CANDIDATE


def test_it_runs_one_forward_pass_per_batch_and_touches_nothing_in_the_database(
    active, photo_folder, tmp_path, monkeypatch
):
    passes: list[int] = []
    original = KerasBackend.predict

    def counting(self, batch):
        passes.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(KerasBackend, "predict", counting)

    classify(photo_folder, tmp_path / "flip.csv", "--batch-size", "2", "--tta", "flip")

    # Files in name order: [a.jpg, b], [broken.jpg (skipped), c.heic]; two views each with flip.
    assert passes == [4, 2]
    active.refresh_from_db()
    assert active.tta == "none" and active.state == ClassifierVersion.State.ACTIVE
    assert not Prediction.objects.exists() and not Observation.objects.exists()


def test_it_reads_subfolders_only_when_asked(active, photo_folder, tmp_path):
    (photo_folder / "day-2").mkdir()
    (photo_folder / "day-2" / "d.webp").write_bytes(make_photo("WEBP", width=50, height=50, seed=4))

    classify(photo_folder, tmp_path / "flat.csv")
    classify(photo_folder, tmp_path / "deep.csv", "--recursive")

    assert [row["file"] for row in read_csv(tmp_path / "flat.csv")[1]] == ["a.jpg", "b", "c.heic"]
    assert [row["file"] for row in read_csv(tmp_path / "deep.csv")[1]] == [
        "a.jpg",
        "b",
        "c.heic",
        "day-2/d.webp",
    ]


def test_it_skips_a_truncated_photo(active, photo_folder, tmp_path):
    data = make_photo("JPEG", width=200, height=150, seed=5)
    (photo_folder / "truncated.jpg").write_bytes(data[: len(data) // 3])

    _, stderr = classify(photo_folder, tmp_path / "out.csv")

    assert "Skipped truncated.jpg: the image cannot be decoded" in stderr
    assert len(read_csv(tmp_path / "out.csv")[1]) == 3


def test_it_needs_an_active_version_or_one_named(campaign, candidate, photo_folder, tmp_path):
    with pytest.raises(
        CommandError, match=f"no active classifier: pass --version ID .*{candidate.pk} Tiny 2"
    ):
        classify(photo_folder, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "999"], "No classifier version 999"),
        (["--campaign", "conus"], "Unknown campaign 'conus'"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_it_explains_bad_options(active, photo_folder, tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        classify(photo_folder, tmp_path / "out.csv", *args)


def test_it_refuses_a_folder_with_no_photo_it_can_read(active, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing to see")

    with pytest.raises(CommandError, match="None of the 1 files"):
        classify(folder, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_it_refuses_a_version_whose_weights_changed(active, photo_folder, tmp_path):
    with open(active.weights.path, "ab") as handle:
        handle.write(b"tampered")

    with pytest.raises(CommandError, match="do not match the recorded sha256"):
        classify(photo_folder, tmp_path / "out.csv")
