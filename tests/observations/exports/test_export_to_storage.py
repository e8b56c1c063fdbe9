"""Exports written into storage: `export_records --to-storage` and the scheduled task.

In a bucket (moto's server over HTTP) the file is a private object under models/exports/ with a
signed link; on the embedded default it is a file under MODELS_ROOT/exports/.
"""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from celery.schedules import crontab
from django.core.management import CommandError, call_command
from dwca.read import DwCAReader

from observations.exports.stored import export_store
from observations.tasks import write_export
from tests import s3 as moto

s3_server, s3 = moto.s3_server, moto.s3  # fixtures: a moto server, a bucket of its own

pytestmark = pytest.mark.django_db


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def run(*args: str) -> tuple[list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_records", *args, stdout=out, stderr=err)
    return out.getvalue().split(), err.getvalue()


def test_the_command_writes_a_private_darwin_core_archive_into_the_bucket(
    s3, confirmed, taxa, tmp_path
):
    records = [confirmed(), confirmed(taxon=taxa[1])]

    lines, log = run("--format", "dwca", "--to-storage")

    key, url = lines
    assert key.startswith("exports/") and key.endswith("-dwca.zip")
    assert s3.object_keys() == sorted(
        [f"models/{key}", *s3.object_keys("originals/"), *s3.object_keys("public/")]
    )
    # Private: refused without a signature, served with the printed one.
    assert fetch(s3.object_url(f"models/{key}"))[0] == 403
    assert s3.is_its_url(url) and "X-Amz-Signature=" in url
    status, archive = fetch(url)
    assert status == 200 and archive == s3.read(f"models/{key}")
    (tmp_path / "a.zip").write_bytes(archive)
    with DwCAReader(str(tmp_path / "a.zip")) as dwca:
        assert {row.id for row in dwca} == {f"urn:uuid:{r.uuid}" for r in records}
    assert "Wrote 2 records to storage (dwca" in log


def test_latest_keeps_one_stable_name_that_each_run_replaces(s3, confirmed):
    confirmed()
    first, _ = run("--format", "csv", "--to-storage", "--latest")
    confirmed()
    second, _ = run("--format", "csv", "--to-storage", "--latest")

    assert first[2] == second[2] == "exports/latest-csv.csv"
    exports = s3.object_keys("models/exports/")
    assert "models/exports/latest-csv.csv" in exports
    assert len(exports) == 3  # two dated files and the latest
    rows = list(csv.DictReader(io.StringIO(s3.read("models/exports/latest-csv.csv").decode())))
    assert len(rows) == 2


def test_the_scheduled_task_writes_the_latest_archive(s3, confirmed):
    confirmed()

    name = write_export.apply(kwargs={"export_format": "dwca"}).get()

    assert f"models/{name}" in s3.object_keys("models/exports/")
    assert "models/exports/latest-dwca.zip" in s3.object_keys("models/exports/")
    assert s3.read("models/exports/latest-dwca.zip") == s3.read(f"models/{name}")


def test_on_the_embedded_default_it_is_a_file_under_the_models_folder(settings, confirmed):
    confirmed()

    stored = export_store(
        export_format="geojson", now=datetime(2026, 7, 1, 8, 0, 5, tzinfo=UTC), chunk_size=1
    )

    assert stored.name == "exports/20260701T080005Z-geojson.geojson"
    assert stored.url() is None
    path = settings.STORAGES["models"]["OPTIONS"]["location"] + "/" + stored.name
    assert stored.path() == path
    with open(path, "rb") as file:
        written = file.read()
    assert written.startswith(b'{"type":"FeatureCollection"')
    assert stored.records == 1 and stored.size == len(written)


def test_latest_without_to_storage_is_refused(tmp_path):
    with pytest.raises(CommandError, match="--latest goes with --to-storage"):
        call_command("export_records", "--format", "csv", "--out", str(tmp_path / "x"), "--latest")


def test_the_schedule_runs_the_task_on_the_default_queue_when_asked():
    from webapp.celery import app

    route = app.amqp.router.route({}, "observations.tasks.write_export")
    assert route["queue"].name == "default"
    schedule = _settings_with(EXPORT_SCHEDULE_FORMATS="dwca", EXPORT_SCHEDULE_HOUR="4")
    entry = schedule["write-export-dwca"]
    assert entry["task"] == "observations.tasks.write_export"
    assert entry["kwargs"] == {"export_format": "dwca", "latest": True}
    assert entry["schedule"] == crontab(hour=4, minute=30)


def _settings_with(**env) -> dict:
    """CELERY_BEAT_SCHEDULE as the settings module builds it from these variables."""
    import os
    import runpy

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return runpy.run_path("webapp/settings.py")["CELERY_BEAT_SCHEDULE"]
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value
