"""The web process serves pages, uploads, identify and the schema without any ML library."""

import json
import subprocess
import sys
import textwrap

import pytest

from tests.workers import ROOT, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from django.test import Client
    from django.urls import get_resolver
    get_resolver().url_patterns  # import every URL module, as a web worker does
    from tests.images import photo_upload
    client = Client()
    statuses = [
        client.get("/").status_code,
        client.get("/api/v1/observations/").status_code,
        client.get("/api/schema/").status_code,
        client.post("/api/v1/observations/", {"photos": [photo_upload(gps=(42.6415, -0.0532))],
                    "observed_at": "2026-06-01T10:00:00+02:00"}).status_code,
    ]
    heavy = ("tensorflow", "keras", "tf_keras", "onnxruntime", "torch", "scipy")
    loaded = [name for name in heavy if name in sys.modules]
    # VmHWM: this process's peak resident memory (ru_maxrss would carry over the parent's
    # peak across fork and exec).
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    peak_kb = int(status["VmHWM"].split()[0])
    print(json.dumps({"statuses": statuses, "loaded": loaded, "rss_mb": peak_kb / 1024}))
    """
)


def test_the_web_process_never_imports_an_ml_library_and_stays_small(campaign):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=worker_env(DJANGO_SETTINGS_MODULE="webapp.settings", CELERY_BROKER_URL="memory://"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["statuses"] == [200, 200, 200, 201]
    assert report["loaded"] == []
    # An upload decodes full-size photos; the process with everything imported peaks well
    # under the design's 200 MB.
    assert report["rss_mb"] < 150, report
