"""`python manage.py export_records`: the same files and filters as the API, written to disk."""

from __future__ import annotations

import csv
import json
import zipfile

import pytest
from django.core.management import CommandError, call_command

from observations.models import Observation

pytestmark = pytest.mark.django_db


def test_it_writes_each_format_to_the_file(tmp_path, confirmed, taxa):
    tmp_path = tmp_path / "exports"
    buddleja = confirmed()
    orchid = confirmed(taxon=taxa[3], position=(42.64151, -0.05320))

    call_command("export_records", "--format", "csv", "--out", str(tmp_path / "r.csv"))
    call_command("export_records", "--format", "geojson", "--out", str(tmp_path / "r.geojson"))
    call_command("export_records", "--format", "dwca", "--out", str(tmp_path / "out/r.zip"))

    with open(tmp_path / "r.csv", newline="") as file:
        rows = {row["uuid"]: row for row in csv.DictReader(file)}
    assert set(rows) == {str(buddleja.uuid), str(orchid.uuid)}
    assert rows[str(orchid.uuid)]["latitude"] == "42.65"  # public positions by default
    features = json.loads((tmp_path / "r.geojson").read_text())["features"]
    assert {feature["id"] for feature in features} == set(rows)
    with zipfile.ZipFile(tmp_path / "out/r.zip") as archive:
        occurrences = archive.read("occurrence.txt").decode().splitlines()
    assert len(occurrences) == 3
    # Written under a temporary name, then renamed: nothing else is left behind.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out", "r.csv", "r.geojson"]


def test_it_takes_the_same_filters_as_the_api(tmp_path, confirmed, taxa):
    confirmed()
    orchid = confirmed(taxon=taxa[3], position=(42.64151, -0.05320))
    out = tmp_path / "orchids.csv"

    call_command(
        "export_records",
        "--format=csv",
        f"--out={out}",
        "--taxon=Cypripedium calceolus",
        "--park=ordesa",
        "--since=2026-06-01",
        "--until=2026-06-01",
        "--positions=exact",
    )

    with open(out, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["uuid"] for row in rows] == [str(orchid.uuid)]
    assert rows[0]["latitude"] == "42.64151"

    call_command("export_records", "--format=csv", f"--out={out}", "--invasive-only")
    with open(out, newline="") as file:
        assert str(orchid.uuid) not in file.read()


def test_a_bad_filter_stops_it_and_leaves_no_file(tmp_path, confirmed):
    confirmed()
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "records.csv"

    with pytest.raises(CommandError, match="--since: since must be an ISO date"):
        call_command("export_records", "--format=csv", f"--out={out}", "--since=June")
    with pytest.raises(CommandError, match="--campaign: No campaign is called 'nope'"):
        call_command("export_records", "--format=dwca", f"--out={out}", "--campaign=nope")

    assert list(folder.iterdir()) == []


def test_a_dwca_holds_only_licences_gbif_accepts(tmp_path, confirmed):
    kept = confirmed()
    refused = confirmed()
    Observation.objects.filter(pk=refused.pk).update(licence="all-rights-reserved")

    call_command("export_records", "--format=dwca", f"--out={tmp_path / 'gbif.zip'}")

    with zipfile.ZipFile(tmp_path / "gbif.zip") as archive:
        occurrences = archive.read("occurrence.txt").decode()
    assert f"urn:uuid:{kept.uuid}" in occurrences
    assert f"urn:uuid:{refused.uuid}" not in occurrences


def test_out_dash_writes_the_file_to_standard_output(confirmed, capsysbinary):
    kept = confirmed()

    call_command("export_records", "--format=geojson", "--out=-")

    document = json.loads(capsysbinary.readouterr().out)
    assert [feature["id"] for feature in document["features"]] == [str(kept.uuid)]
