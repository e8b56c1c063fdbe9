"""docker/: the compose file, the Dockerfile and the env file agree with the code they deploy.

No Docker engine runs here, so these read the files: every process has the queues DESIGN.md
gives it, every routed queue has a consumer in each profile, health checks and start order are
there, nothing runs as root, and every variable the env file sets is one the code reads.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = {name for name, service in SERVICES.items() if "build" in service}
ONE_SHOTS = {"createbucket", "migrate"}


def command(name: str) -> list[str]:
    value = SERVICES[name]["command"]
    return shlex.split(value) if isinstance(value, str) else list(value)


def option(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def workers(profile: str) -> dict[str, list[str]]:
    """Celery workers started by `docker compose --profile <profile> up`: name -> queues."""
    found = {}
    for name, service in SERVICES.items():
        args = command(name) if "command" in service else []
        if args[:4] != ["celery", "-A", "webapp", "worker"]:
            continue
        if service.get("profiles") and profile not in service["profiles"]:
            continue
        found[name] = option(args, "-Q").split(",")
    return found


def stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's stages: name -> [(instruction, arguments)], continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    result: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            result[current] = [("FROM", rest)]
        elif current is not None:
            result[current].append((instruction.upper(), rest.strip()))
    return result


def test_each_process_consumes_the_queues_the_design_gives_it():
    assert command("web")[:3] == ["gunicorn", "--config", "webapp/gunicorn_conf.py"]
    assert command("web")[-1] == "webapp.wsgi"
    assert (ROOT / "webapp" / "gunicorn_conf.py").is_file()
    assert command("migrate") == ["python", "manage.py", "migrate", "--noinput"]
    assert command("beat")[:4] == ["celery", "-A", "webapp", "beat"]
    for profile in ("gpu", "cpu"):
        queues = workers(profile)
        by_queue = {
            q: [name for name, qs in queues.items() if q in qs]
            for q in ("inference", "training", "default")
        }
        assert all(len(names) == 1 for names in by_queue.values()), (profile, queues)
        training = command(by_queue["training"][0])
        assert option(training, "--concurrency") == "1"
        inference = command(by_queue["inference"][0])
        assert queues[by_queue["inference"][0]] == ["inference"]
        if profile == "gpu":
            assert option(inference, "--concurrency") == "1"  # one process per GPU


def test_every_queue_a_task_is_routed_to_has_a_worker_in_each_profile():
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    routed.add(settings.CELERY_TASK_DEFAULT_QUEUE)
    for profile in ("gpu", "cpu"):
        consumed = {queue for queues in workers(profile).values() for queue in queues}
        assert routed <= consumed, (profile, routed - consumed)


def test_gpu_workers_reserve_a_gpu_and_run_the_cuda_image():
    for name in ("inference-worker", "training-worker"):
        service = SERVICES[name]
        assert service["profiles"] == ["gpu"]
        assert service["build"]["target"] == "gpu-worker"
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    for name in ("inference-worker-cpu", "training-worker-cpu"):
        assert SERVICES[name]["profiles"] == ["cpu"]
        assert SERVICES[name]["build"]["target"] == "worker"
        assert "deploy" not in SERVICES[name]
    # The default worker and beat import no TensorFlow: the web image (without it) runs them.
    for name in ("web", "migrate", "default-worker", "beat"):
        assert SERVICES[name]["build"]["target"] == "web"


def test_processes_start_only_after_healthy_backends_and_a_migrated_schema():
    for name in APP_SERVICES - {"migrate"}:
        needs = SERVICES[name]["depends_on"]
        assert needs["postgres"] == {"condition": "service_healthy"}, name
        assert needs["redis"] == {"condition": "service_healthy"}, name
        assert needs["minio"] == {"condition": "service_healthy"}, name
        assert needs["migrate"] == {"condition": "service_completed_successfully"}, name
        assert needs["createbucket"] == {"condition": "service_completed_successfully"}, name
    assert SERVICES["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert SERVICES["createbucket"]["depends_on"]["minio"] == {"condition": "service_healthy"}


def test_long_running_services_have_health_checks_and_data_lives_in_volumes():
    for name, service in SERVICES.items():
        if name in ONE_SHOTS:
            assert service["restart"] == "no", name
            continue
        test = service["healthcheck"]["test"]
        assert test and test[0] in {"CMD", "CMD-SHELL"}, name
        assert service["restart"] == "unless-stopped", name
    assert "http://127.0.0.1:8000/healthz" in " ".join(SERVICES["web"]["healthcheck"]["test"])
    for name in workers("gpu") | workers("cpu"):
        assert "inspect ping" in SERVICES[name]["healthcheck"]["test"][1], name
    mounts = {name: service.get("volumes", []) for name, service in SERVICES.items()}
    assert "postgres-data:/var/lib/postgresql/data" in mounts["postgres"]
    assert "redis-data:/data" in mounts["redis"]
    assert "minio-data:/data" in mounts["minio"]
    assert "training:/data/training" in mounts["training-worker"]
    named = {mount.split(":")[0] for service_mounts in mounts.values() for mount in service_mounts}
    assert named <= set(COMPOSE["volumes"])


def test_images_run_as_an_unprivileged_user_with_health_checks():
    found = stages()
    for target in ("web", "worker", "gpu-worker"):
        instructions = found[target]
        users = [args for instruction, args in instructions if instruction == "USER"]
        assert users and users[-1] not in {"root", "0"}, target
        assert any(instruction == "HEALTHCHECK" for instruction, _ in instructions), target
        assert any(instruction == "CMD" for instruction, _ in instructions), target
    web = " ".join(args for _, args in found["web"])
    assert "base.txt" in web and "ml.txt" not in web and "gpu.txt" not in web
    assert "collectstatic" in web
    assert "ml.txt" in " ".join(args for _, args in found["worker"])
    assert "gpu.txt" in " ".join(args for _, args in found["gpu-worker"])
    # Whatever the Dockerfile copies exists (and is not kept out by .dockerignore).
    ignored = (ROOT / ".dockerignore").read_text().split()
    for _, args in found["source"][1:]:
        source = args.split()[0]
        assert (ROOT / source).exists(), source
        assert source not in ignored


def test_requirements_keep_tensorflow_out_of_the_web_image():
    sys.path.insert(0, str(DOCKER))
    try:
        from requirements import requirements
    finally:
        sys.path.remove(str(DOCKER))

    def names(kind):
        return {
            re.match(r"[A-Za-z0-9._-]+(\[[^\]]*\])?", r).group(0).lower()
            for r in requirements(kind)
        }

    assert not names("base") & {"tensorflow", "tensorflow-cpu", "keras", "onnxruntime"}
    assert {"tensorflow-cpu", "keras", "gunicorn"} <= names("ml")
    assert "tensorflow[and-cuda]" in names("gpu")
    assert not names("gpu") & {"tensorflow-cpu", "tensorflow"}


def test_the_env_example_sets_every_required_variable_and_only_ones_the_code_reads():
    example = {
        line.split("=", 1)[0]
        for line in (DOCKER / "env.example").read_text().splitlines()
        if re.match(r"^#? ?[A-Z][A-Z0-9_]*=", line)
    }
    example = {name.lstrip("# ") for name in example}
    compose_text = (DOCKER / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", compose_text))
    assert required <= example, required - example

    read = set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
    for path in (ROOT / "webapp").glob("*.py"):
        read |= set(re.findall(r'(?:env\w*|_env|_int)\(\s*"([A-Z][A-Z0-9_]+)"', path.read_text()))
    read |= {"COMPOSE_PROFILES", "FORWARDED_ALLOW_IPS"}  # read by compose and gunicorn
    assert example <= read, example - read


@pytest.mark.skipif(
    not shutil.which("docker")
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed",
)
def test_docker_compose_accepts_the_file(tmp_path):
    # A copy beside an .env made from the example, as an operator would have it.
    shutil.copy(DOCKER / "compose.yaml", tmp_path / "compose.yaml")
    shutil.copy(DOCKER / "env.example", tmp_path / ".env")
    for profile in ("gpu", "cpu"):
        result = subprocess.run(
            ["docker", "compose", "--profile", profile, "config", "--quiet"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
