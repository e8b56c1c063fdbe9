#!/usr/bin/env python
"""Upload load on ParkWatch's web tier, without and with an inference worker running.

Run from the checkout: `.venv/bin/python bench/load.py` (or `make bench-load`).

Everything runs as real processes on loopback: PostgreSQL (a database of its own, created and
dropped here), Redis (one database number, flushed before and after), gunicorn serving
`webapp.wsgi`, and one Celery inference worker, with media in a temporary folder
(PARKWATCH_VAR_DIR). Concurrent clients upload real-size photographic-like JPEGs with GPS EXIF,
made before any timing, each upload with its own client_uuid, through the public API
(`POST /api/v1/observations/`), for the same time in two phases:

- phase A: the web tier alone (the inference worker paused with SIGSTOP: sightings wait in
  the queue);
- phase B: the same load while the inference worker classifies what arrives.

The phases alternate A B B A (`--rounds`), so that load drifting on a shared machine and the
growing tables weigh on both alike; after each stretch the worker classifies what it received,
and its model was loaded on warm-up sightings first, never during a timed phase. At the end it
checks that nothing was lost: each accepted upload is one sighting, classified once, with one
top-k.

Figures are measured in one run on a possibly shared machine, so what matters is the ratios,
compared with the targets of the issue: phase B's accepted uploads per second >= 0.8 x phase
A's (the web never waits on the model), and nothing lost. The script exits 0 either way.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

TARGET_RATIO = 0.8
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/parkwatch_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/6"
# Written by the deployment work; used when present, else gunicorn's plain arguments.
GUNICORN_CONFIGS = ("webapp/gunicorn_conf.py", "docker/gunicorn.conf.py")
UPLOAD_PATH = "/api/v1/observations/"
REQUEST_TIMEOUT = 120.0
SAMPLE_SECONDS = 0.25

# Environment variables the benchmark sets or clears itself, so that it never writes into the
# user's media, model storage or S3 bucket.
_CLEARED_ENV = (
    "MEDIA_ROOT",
    "PRIVATE_MEDIA_ROOT",
    "MODELS_ROOT",
    "MODEL_CACHE_DIR",
    "STATIC_ROOT",
    "TRAINING_WORKDIR",
    "AWS_STORAGE_BUCKET_NAME",
    "CELERY_BROKER_URL",
    "DATABASE_URL",
    "REDIS_URL",
)


class BenchError(RuntimeError):
    """Something the benchmark needs is missing; the message says what to do."""


# -- command line ----------------------------------------------------------------------------


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown, except where the help text says what a missing value means."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=_HelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="length of each phase, all rounds together"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds of A and B, alternated A B B A ...; each phase lasts --seconds / --rounds",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent uploading clients")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--web-threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument(
        "--model",
        choices=("demo", "xception"),
        default="demo",
        help="classifier the worker serves: seed_demo's small demo model, or a full-size "
        "Xception (299 px, random weights, nothing downloaded)",
    )
    parser.add_argument(
        "--worker-cpus",
        default="none",
        help="CPUs for the inference worker, e.g. '1' or '2-3'; gunicorn gets the others. "
        "'auto': the last CPU when this machine has at least 2; 'none': no pinning (the "
        "default: the worker runs at low priority instead, see --worker-nice)",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=19,
        help="niceness of the inference worker and its session (19, the default: it gets the "
        "CPU the web leaves, as README's Deploy section runs it on a machine shared with the "
        "web; 0: the same priority as the web)",
    )
    parser.add_argument(
        "--photos", type=int, default=48, help="distinct JPEGs made before timing (reused)"
    )
    parser.add_argument("--port", type=int, default=0, help="gunicorn's port (0: a free one)")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="seconds to wait for the worker to classify a backlog (default: 300; "
        "1800 with --model xception)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or None,
        help=f"PostgreSQL to use as it is (default: $DATABASE_URL, else {DEFAULT_DATABASE_URL}, "
        "created and dropped here)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or None,
        help=f"Redis to use as it is (default: $REDIS_URL, else {DEFAULT_REDIS_URL}, "
        "flushed before and after)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--register-xception", help=argparse.SUPPRESS)  # internal: subprocess
    args = parser.parse_args(argv)
    if args.register_xception:
        return args
    for name in ("clients", "web_workers", "web_threads", "photos", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.drain_timeout is None:
        args.drain_timeout = 1800.0 if args.model == "xception" else 300.0
    try:
        args.worker_cpu_set, args.web_cpu_set = pinning(args.worker_cpus)
    except ValueError as error:
        parser.error(f"--worker-cpus: {error}")
    return args


def parse_cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def pinning(option: str) -> tuple[set[int] | None, set[int] | None]:
    """(inference worker's CPUs, gunicorn's CPUs), or (None, None) for no pinning."""
    available = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()
    option = option.strip().lower()
    if option == "none" or len(available) < 2:
        return None, None
    if option == "auto":
        worker = {max(available)}
    else:
        worker = parse_cpu_list(option)
        if not worker <= available:
            raise ValueError(f"CPUs {sorted(worker - available)} are not available to this process")
    web = available - worker
    if not web:
        raise ValueError("leave at least one CPU for gunicorn")
    return worker, web


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    return platform.machine()


def cpu_text(cpus: set[int] | None) -> str:
    return "any" if cpus is None else ",".join(str(c) for c in sorted(cpus))


# -- PostgreSQL and Redis --------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _connect(url: str):
    import psycopg2

    try:
        return psycopg2.connect(url, connect_timeout=5)
    except psycopg2.OperationalError as error:
        raise BenchError(
            f"PostgreSQL is not reachable at {urlsplit(url).netloc}: {str(error).strip()}\n"
            "Start it (e.g. `pg_ctlcluster 15 main start` or `docker run -p 5432:5432 "
            "-e POSTGRES_HOST_AUTH_METHOD=trust postgres`) or pass --database-url / DATABASE_URL."
        ) from None


def database_check(url: str) -> None:
    """A database given by the user: only check that it answers."""
    _connect(url).close()


def database_create(url: str) -> None:
    """Create the benchmark's own database (dropping a leftover of an interrupted run)."""
    from psycopg2 import sql

    name = urlsplit(url).path.lstrip("/")
    admin = _connect(_with_database(url, "postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        admin.close()


def database_drop(url: str) -> None:
    import psycopg2
    from psycopg2 import sql

    name = urlsplit(url).path.lstrip("/")
    admin = psycopg2.connect(_with_database(url, "postgres"), connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        admin.close()


def redis_check(url: str, *, flush: bool) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
        if flush:
            client.flushdb()  # only this URL's database number
    except redis.RedisError as error:
        raise BenchError(
            f"Redis is not reachable at {url}: {error}\n"
            "Start it (e.g. `redis-server --daemonize yes`) or pass --redis-url / REDIS_URL."
        ) from None
    finally:
        client.close()


def redis_cpu_seconds(url: str | None) -> float | None:
    """CPU seconds the Redis server has used (all its databases: it may serve others too)."""
    if url is None:
        return None
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    except (redis.RedisError, KeyError, ValueError):
        return None
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- processes -------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log_path: Path
    cpus: set[int] | None

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def pause(self) -> None:
        """Stop the whole group (SIGSTOP): it takes no CPU and no message until `resume`."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGCONT)


class Services:
    """The benchmark's subprocesses, each in its own process group, stopped on exit."""

    def __init__(self, log_dir: Path, env: dict[str, str]):
        self.log_dir = log_dir
        self.env = env
        self.running: list[Service] = []

    def start(
        self, name: str, command: list[str], *, cpus: set[int] | None = None, nice: int = 0, **env
    ) -> Service:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("ab")

        def pin() -> None:  # children inherit both
            if cpus is not None:
                os.sched_setaffinity(0, cpus)
            if nice:
                os.nice(nice)
                # With the kernel's autogroup scheduling, CPU is shared between sessions first
                # (each service runs in its own), so a process's nice counts only inside its
                # session: the session's own niceness is what ranks it against the web.
                with contextlib.suppress(OSError):
                    Path("/proc/self/autogroup").write_text(f"{nice}\n")

        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=pin if cpus is not None or nice else None,
        )
        log.close()
        service = Service(name, process, log_path, cpus)
        self.running.append(service)
        return service

    def stop(self, service: Service, timeout: float = 20.0) -> None:
        process = service.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
                os.killpg(process.pid, signal.SIGCONT)  # a paused worker acts on it only now
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # Whatever the group left behind (a pool child whose parent died first).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if service in self.running:
            self.running.remove(service)

    def stop_all(self) -> None:
        for service in reversed(list(self.running)):
            self.stop(service)


def run_step(title: str, command: list[str], env: dict[str, str], log_path: Path) -> None:
    """A setup command (migrate, seed_demo...); its output goes to the log, shown if it fails."""
    started = time.perf_counter()
    with log_path.open("ab") as log:
        result = subprocess.run(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise BenchError(f"{title} failed (exit {result.returncode}):\n{tail}")
    print(f"  {title}: {time.perf_counter() - started:.1f} s")


def wait_until(predicate, *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def http_answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        connection.close()


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (gunicorn's master and workers, Celery's pool)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo += [int(child) for child in children.read().split()]
    return found


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (a preloaded app's) divided among their sharers."""
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def machine_busy_seconds() -> float | None:
    """CPU seconds every process on the machine has used (as bench/inference.py reads it)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:9]]
        return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    return None


def waited_seconds(pid: int) -> dict[int, float]:
    """Seconds each thread of a process has waited for a CPU while runnable (schedstat)."""
    waits = {}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            path = f"/proc/{pid}/task/{tid}/schedstat"
            with contextlib.suppress(OSError, ValueError, IndexError), open(path) as stat:
                waits[int(tid)] = int(stat.read().split()[1]) / 1e9
    return waits


class CpuMeter:
    """CPU seconds some processes used between the first and the last `sample`, processes that
    come and go included (a gunicorn worker recycled by max_requests, a new database backend),
    and how long their threads waited for a CPU meanwhile (run-queue delay)."""

    def __init__(self, pids: Callable[[], Iterable[int]]):
        self.pids = pids
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.first_wait: dict[int, float] = {}
        self.last_wait: dict[int, float] = {}
        self.sampled = False

    def sample(self) -> None:
        for pid in self.pids():
            seconds = cpu_seconds(pid)
            if seconds is None:
                continue
            if pid not in self.first:
                self.first[pid] = seconds if not self.sampled else 0.0
            self.last[pid] = seconds
            for tid, waited in waited_seconds(pid).items():
                if tid not in self.first_wait:
                    self.first_wait[tid] = waited if not self.sampled else 0.0
                self.last_wait[tid] = waited
        self.sampled = True

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)

    @property
    def waited(self) -> float:
        return sum(self.last_wait[tid] - self.first_wait[tid] for tid in self.last_wait)


class DatabaseBackends:
    """The PostgreSQL backends serving the benchmark's database (the server is on loopback)."""

    def __init__(self, url: str):
        import psycopg2

        self.name = urlsplit(url).path.lstrip("/")
        self.connection = psycopg2.connect(url, connect_timeout=5)
        self.connection.autocommit = True

    def __call__(self) -> list[int]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.name],
            )
            return [row[0] for row in cursor.fetchall()]

    def close(self) -> None:
        self.connection.close()


class Sampler(threading.Thread):
    """Samples the web tier's RSS (peak of the sum, and of one worker) and CPU meters."""

    def __init__(self, web_pid: int, worker_pid: int | None, database: DatabaseBackends | None):
        super().__init__(daemon=True)
        self.web_pid = web_pid
        self.web_cpu = CpuMeter(lambda: process_tree(web_pid))
        self.worker_cpu = CpuMeter(lambda: process_tree(worker_pid) if worker_pid else [])
        self.database_cpu = CpuMeter(database or list)
        self.peak_total_kib = 0
        self.peak_worker_kib = 0
        self.peak_pss_kib = 0
        self.stopped = threading.Event()
        self.sample()

    def sample(self) -> None:
        pids = process_tree(self.web_pid)
        sizes = [rss_kib(pid) for pid in pids]
        self.peak_total_kib = max(self.peak_total_kib, sum(sizes))
        self.peak_worker_kib = max([self.peak_worker_kib, *sizes[1:]])
        self.peak_pss_kib = max(self.peak_pss_kib, sum(pss_kib(pid) for pid in pids))
        self.web_cpu.sample()
        self.worker_cpu.sample()
        self.database_cpu.sample()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            self.sample()

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.sample()


# -- photos and clients ----------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoPart:
    """One photo as a ready multipart part; the client_uuid field goes in front per upload."""

    part: bytes
    size: int


BOUNDARY = "parkwatch-load-5d1c0e8f"


def make_photos(count: int) -> list[PhotoPart]:
    from inference import photo_jpeg

    start = datetime(2025, 6, 14, 9, 0)
    # Pillow and numpy release the GIL: threads help.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        jpegs = list(
            pool.map(lambda seed: photo_jpeg(seed, start + timedelta(minutes=seed)), range(count))
        )
    parts = []
    for seed, data in enumerate(jpegs):
        head = (
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="photos"; filename="IMG_{seed:04d}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        parts.append(PhotoPart(head + data + f"\r\n--{BOUNDARY}--\r\n".encode(), len(data)))
    return parts


def upload_body(photo: PhotoPart, client_uuid: str) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="client_uuid"\r\n\r\n'
        f"{client_uuid}\r\n"
    ).encode()
    return head + photo.part


@dataclass
class Upload:
    phase: str
    client_uuid: str
    started: float  # wall clock (time.time), to compare with the database's timestamps
    seconds: float = 0.0
    status: str = ""  # HTTP status, or the exception's name when no answer came


@dataclass
class PhaseResult:
    """One timed stretch of uploads (or several of one phase, merged), with where CPU went."""

    name: str
    uploads: list[Upload]
    elapsed: float
    peak_web_rss_kib: int
    peak_web_worker_rss_kib: int
    peak_web_pss_kib: int
    # CPU seconds used meanwhile by gunicorn, the inference worker, PostgreSQL's backends for
    # this database, this process (the clients) and everything else on the machine.
    cpu: dict[str, float]
    web_waited: float = 0.0  # seconds gunicorn's threads were runnable but had no CPU
    suggestion_seconds: list[float] = field(default_factory=list)

    @classmethod
    def merge(cls, name: str, parts: Sequence[PhaseResult]) -> PhaseResult:
        return cls(
            name=name,
            uploads=[u for part in parts for u in part.uploads],
            elapsed=sum(part.elapsed for part in parts),
            peak_web_rss_kib=max(part.peak_web_rss_kib for part in parts),
            peak_web_worker_rss_kib=max(part.peak_web_worker_rss_kib for part in parts),
            peak_web_pss_kib=max(part.peak_web_pss_kib for part in parts),
            cpu={key: sum(part.cpu[key] for part in parts) for key in parts[0].cpu},
            web_waited=sum(part.web_waited for part in parts),
            suggestion_seconds=[s for part in parts for s in part.suggestion_seconds],
        )

    @property
    def accepted(self) -> list[Upload]:
        return [u for u in self.uploads if u.status == "201"]

    @property
    def per_second(self) -> float:
        return len(self.accepted) / self.elapsed

    @property
    def errors(self) -> Counter:
        return Counter(u.status for u in self.uploads if u.status != "201")

    def cores(self, key: str) -> float:
        return self.cpu[key] / self.elapsed


def client_loop(
    port: int,
    phase: str,
    photos: Sequence[PhotoPart],
    counter: Iterator[int],
    lock: threading.Lock,
    deadline: float,
    stop: threading.Event,
    out: list[Upload],
) -> None:
    """Upload one sighting after another until the deadline, keeping the session cookie."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    cookie = ""
    try:
        while time.monotonic() < deadline and not stop.is_set():
            with lock:
                index = next(counter)
            upload = Upload(phase, str(uuid.uuid4()), time.time())
            body = upload_body(photos[index % len(photos)], upload.client_uuid)
            headers = {
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Accept": "application/json",
            }
            if cookie:
                headers["Cookie"] = cookie
            started = time.perf_counter()
            try:
                connection.request("POST", UPLOAD_PATH, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                upload.status = str(response.status)
                set_cookie = response.getheader("Set-Cookie") or ""
                if set_cookie.startswith("sessionid="):
                    cookie = set_cookie.split(";", 1)[0]
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException) as error:
                upload.status = type(error).__name__
                connection.close()
            upload.seconds = time.perf_counter() - started
            with lock:
                out.append(upload)
    finally:
        connection.close()


def run_phase(
    name: str,
    *,
    port: int,
    photos: Sequence[PhotoPart],
    clients: int,
    seconds: float,
    web_pid: int,
    worker_pid: int | None,
    database: DatabaseBackends | None,
    redis_url: str | None,
    first_photo: int,
) -> PhaseResult:
    uploads: list[Upload] = []
    lock = threading.Lock()
    counter = iter(range(first_photo, 1 << 62))
    stop = threading.Event()
    sampler = Sampler(web_pid, worker_pid, database)
    busy0 = machine_busy_seconds()
    redis0 = redis_cpu_seconds(redis_url)
    own0 = _own_cpu()
    started = time.monotonic()
    deadline = started + seconds
    threads = [
        threading.Thread(
            target=client_loop,
            args=(port, name, photos, counter, lock, deadline, stop, uploads),
            daemon=True,
        )
        for _ in range(clients)
    ]
    sampler.start()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        sampler.stop()
    # Requests in flight at the deadline finish and count: the phase ends with the last one.
    elapsed = time.monotonic() - started
    own = _own_cpu() - own0
    redis1 = redis_cpu_seconds(redis_url)
    busy1 = machine_busy_seconds()
    cpu = {
        "web": sampler.web_cpu.seconds,
        "inference": sampler.worker_cpu.seconds,
        "database": sampler.database_cpu.seconds,
        "redis": redis1 - redis0 if redis0 is not None and redis1 is not None else 0.0,
        "clients": own,
    }
    measured = sum(cpu.values())
    cpu["others"] = float("nan")
    if busy0 is not None and busy1 is not None:
        cpu["others"] = max(0.0, busy1 - busy0 - measured)
    return PhaseResult(
        name=name,
        uploads=uploads,
        elapsed=elapsed,
        peak_web_rss_kib=sampler.peak_total_kib,
        peak_web_worker_rss_kib=sampler.peak_worker_kib,
        peak_web_pss_kib=sampler.peak_pss_kib,
        cpu=cpu,
        web_waited=sampler.web_cpu.waited,
    )


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- the database side (Django ORM, in this process) ------------------------------------------


def django_setup() -> None:
    import django

    django.setup()


def classified_at(client_uuids: Sequence[str]) -> dict[str, float | None]:
    from observations.models import Observation

    rows = Observation.objects.filter(client_uuid__in=client_uuids).values_list(
        "client_uuid", "classified_at"
    )
    return {str(key): (when.timestamp() if when else None) for key, when in rows}


def unclassified(client_uuids: Sequence[str]) -> int:
    """How many of these sightings still wait for the worker (`received`)."""
    from observations.models import Observation

    return Observation.objects.filter(
        client_uuid__in=client_uuids, status=Observation.Status.RECEIVED
    ).count()


def drain(part: PhaseResult, args: argparse.Namespace, worker: Service) -> float | None:
    """Wait until the worker has classified this part's sightings; in phase B, note when each
    got its AI suggestion (from the upload's start)."""
    uuids = [u.client_uuid for u in part.accepted]
    drained = wait_classified(uuids, args.drain_timeout, worker)
    if worker.process.poll() is not None:
        raise BenchError(f"the inference worker exited:\n{worker.log_tail()}")
    if part.name == "B":
        done_at = classified_at(uuids)
        part.suggestion_seconds = [
            done_at[u.client_uuid] - u.started
            for u in part.accepted
            if done_at.get(u.client_uuid) is not None
        ]
    return drained


def wait_classified(client_uuids: Sequence[str], timeout: float, service: Service) -> float | None:
    """Seconds until none of them waits any more, or None at the timeout (or worker death)."""
    started = time.monotonic()
    last_report = started
    while True:
        left = unclassified(client_uuids)
        if left == 0:
            return time.monotonic() - started
        if service.process.poll() is not None:
            print(f"  the inference worker exited:\n{service.log_tail()}")
            return None
        now = time.monotonic()
        if now - started > timeout:
            return None
        if now - last_report > 15:
            print(f"  ... {left} of {len(client_uuids)} still waiting for the worker")
            last_report = now
        time.sleep(0.5)


@dataclass
class LossCheck:
    ok: bool
    lines: list[str]


def check_nothing_lost(
    accepted: Sequence[str], refused: Sequence[str], *, own_database: bool
) -> LossCheck:
    """Every accepted upload is exactly one sighting, classified once, with one full top-k."""
    from django.db.models import Count

    from classifier.models import ClassifierVersion, Prediction
    from observations.models import Observation

    lines: list[str] = []
    ok = True
    rows = Observation.objects.filter(client_uuid__in=accepted)
    per_uuid = Counter(str(u) for u in rows.values_list("client_uuid", flat=True))
    missing = [u for u in accepted if per_uuid[u] == 0]
    doubled = [u for u, n in per_uuid.items() if n > 1]
    lines.append(
        f"accepted uploads {len(accepted)}, sightings found {sum(per_uuid.values())}, "
        f"missing {len(missing)}, duplicated {len(doubled)}"
    )
    ok &= not missing and not doubled
    statuses = Counter(rows.values_list("status", flat=True))
    lines.append("status: " + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())))
    ok &= set(statuses) <= {Observation.Status.CLASSIFIED}
    attempts = Counter(rows.values_list("classification_attempts", flat=True))
    lines.append(
        "claims per sighting: " + ", ".join(f"{a}x {n}" for a, n in sorted(attempts.items()))
    )

    active = ClassifierVersion.objects.filter(state=ClassifierVersion.State.ACTIVE).first()
    top_k = min(5, active.labels.count()) if active else 5
    groups = (
        Prediction.objects.filter(observation__in=rows, photo__isnull=True)
        .values("observation_id", "version_id")
        .annotate(rows=Count("id"), ranks=Count("rank", distinct=True))
    )
    versions_per_sighting = Counter(g["observation_id"] for g in groups)
    bad_groups = [g for g in groups if g["rows"] != top_k or g["ranks"] != top_k]
    twice = [pk for pk, n in versions_per_sighting.items() if n > 1]
    without = rows.count() - len(versions_per_sighting)
    lines.append(
        f"top-{top_k} per (sighting, version): {len(groups) - len(bad_groups)} complete, "
        f"{len(bad_groups)} incomplete or duplicated; classified by two versions {len(twice)}; "
        f"without predictions {without}"
    )
    ok &= not bad_groups and not twice and without == 0
    if active is not None:
        other = rows.exclude(predictions__version=active).count()
        lines.append(f"classified by the active version ({active.name}): {rows.count() - other}")
        ok &= other == 0

    stored_anyway = Observation.objects.filter(client_uuid__in=refused).count()
    if refused:
        lines.append(
            f"uploads answered with an error: {len(refused)}; stored anyway (the answer was "
            f"lost, a retry with the same client_uuid gets the sighting): {stored_anyway}"
        )
    strangers = 0
    if own_database:  # a database given by the user may hold other sightings
        strangers = Observation.objects.exclude(client_uuid__in=[*accepted, *refused]).count()
    if strangers:
        lines.append(f"sightings nobody sent in this run: {strangers}")
        ok = False
    return LossCheck(ok, lines)


def api_spot_check(port: int, uuids: Sequence[str]) -> list[str]:
    """What a visitor sees: GET /api/v1/observations/<uuid>/ shows the status and top 5."""
    seen = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for value in uuids:
            connection.request(
                "GET", f"{UPLOAD_PATH}{value}/", headers={"Accept": "application/json"}
            )
            response = connection.getresponse()
            body = json.loads(response.read() or b"{}")
            if response.will_close:
                connection.close()
            predictions = body.get("predictions") or []
            count = len(predictions) if isinstance(predictions, list) else "?"
            seen.append(f"{response.status} {body.get('status')} ({count} predictions)")
    except (OSError, http.client.HTTPException, ValueError) as error:
        seen.append(f"{type(error).__name__}: {error}")
    finally:
        connection.close()
    return seen


def sighting_uuids(client_uuids: Sequence[str]) -> list[str]:
    from observations.models import Observation

    rows = Observation.objects.filter(client_uuid__in=client_uuids).values_list("uuid", flat=True)
    return [str(value) for value in rows]


# -- the Xception model (in a subprocess, so that this process never imports TensorFlow) ------


def register_xception(folder: str) -> None:
    """Save a full Xception with random weights and make it the demo campaign's active model."""
    django_setup()
    import keras

    from classifier.engine.preprocessing import PreprocessSpec
    from classifier.models import ClassifierVersion
    from classifier.services.registry import version_activate, version_register
    from observations.models import Campaign

    campaign = Campaign.objects.get(is_default=True)
    labels = list(
        campaign.taxa.order_by("scientific_name").values_list("scientific_name", flat=True)
    )
    path = Path(folder) / "xception.keras"
    # weights=None: random weights, nothing is downloaded.
    keras.applications.Xception(weights=None, classes=len(labels)).save(path)
    version = version_register(
        name="Xception (load benchmark)",
        campaign=campaign,
        backend=ClassifierVersion.Backend.KERAS,
        weights_path=path,
        labels=labels,
        spec=PreprocessSpec.xception(299),
        architecture="Xception",
        description="Benchmark model: random weights, not a classifier.",
    )
    version = version_activate(version=version, reason="load benchmark")
    print(f"registered {version} with {len(labels)} classes")


# -- report ----------------------------------------------------------------------------------


def _s(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds:.2f}"


def print_table(phases: Sequence[PhaseResult]) -> None:
    print(
        f"  {'phase':<20} {'sent':>5} {'201':>5} {'errors':>6} {'s':>6} {'up/s':>6} "
        f"{'upload p50':>10} {'p95':>6} {'suggestion p50':>14} {'p95':>6}"
    )
    for p in phases:
        latencies = [u.seconds for u in p.accepted]
        print(
            f"  {p.name:<20} {len(p.uploads):>5} {len(p.accepted):>5} "
            f"{sum(p.errors.values()):>6} {p.elapsed:>6.1f} {p.per_second:>6.2f} "
            f"{_s(percentile(latencies, 50)):>8} s {_s(percentile(latencies, 95)):>4} s "
            f"{_s(percentile(p.suggestion_seconds, 50)):>12} s "
            f"{_s(percentile(p.suggestion_seconds, 95)):>4} s"
        )
    print()
    print(
        f"  {'peak memory, CPU':<20} {'web RSS':>8} {'1 worker':>8} {'web PSS':>8}   "
        f"{'cores: web':>10} {'infer':>6} {'db':>5} {'redis':>5} {'clients':>7} {'others':>6}"
    )
    for p in phases:
        print(
            f"  {p.name:<20} {p.peak_web_rss_kib / 1024:>4.0f} MiB "
            f"{p.peak_web_worker_rss_kib / 1024:>4.0f} MiB {p.peak_web_pss_kib / 1024:>4.0f} MiB   "
            f"{p.cores('web'):>10.2f} {p.cores('inference'):>6.2f} {p.cores('database'):>5.2f} "
            f"{p.cores('redis'):>5.2f} {p.cores('clients'):>7.2f} {p.cores('others'):>6.2f}"
        )
    for p in phases:
        if p.errors:
            print(f"  errors in {p.name}: " + ", ".join(f"{k} x{v}" for k, v in p.errors.items()))


def web_ms_per_upload(p: PhaseResult) -> float:
    return 1000 * p.cpu["web"] / len(p.accepted) if p.accepted else float("nan")


def web_wait_ms_per_upload(p: PhaseResult) -> float:
    return 1000 * p.web_waited / len(p.accepted) if p.accepted else float("nan")


def diagnose(
    a: PhaseResult, b: PhaseResult, cores: int, *, failed: bool, pinned: bool
) -> list[str]:
    """Why phase B's uploads were slower, factor by factor, and how loaded the machine was."""
    notes = []
    used_b = sum(b.cpu.values()) / b.elapsed
    share = b.cores("web") / a.cores("web") if a.cpu["web"] else math.nan
    efficiency = web_ms_per_upload(a) / web_ms_per_upload(b)
    if failed and share < 0.95 and used_b > 0.85 * cores:
        culprit = (
            f"inference took {b.cores('inference'):.2f} cores on the same CPUs"
            if not pinned
            else "the inference worker ran on its own CPU, and the load it displaced went to "
            f"the web's: PostgreSQL ({b.cores('database'):.2f}), Redis "
            f"({b.cores('redis'):.2f}), other processes ({b.cores('others'):.2f})"
        )
        notes.append(
            f"the web tier got {b.cores('web'):.2f} cores in phase B against "
            f"{a.cores('web'):.2f} in phase A while the machine was full ({used_b:.2f} of "
            f"{cores} cores busy): gunicorn was short of CPU, not waiting on the model; "
            f"{culprit}."
            + (
                ""
                if pinned
                else " Pin them apart (--worker-cpus) or run the worker on another "
                "machine, as a deployment does."
            )
        )
    elif failed and share < 0.95:
        notes.append(
            f"the web tier used less CPU in phase B ({b.cores('web'):.2f} against "
            f"{a.cores('web'):.2f} cores) with CPU to spare: it was waiting, on the database, "
            "the broker or the disk; look at the upload path."
        )
    if failed and efficiency < 0.95:
        notes.append(
            f"each upload cost gunicorn more CPU in phase B ({web_ms_per_upload(b):.0f} ms "
            f"against {web_ms_per_upload(a):.0f}) for the same requests, while its threads "
            f"waited longer for a CPU ({web_wait_ms_per_upload(b):.0f} against "
            f"{web_wait_ms_per_upload(a):.0f} ms per upload): most likely preemption (cold "
            "caches, GIL hand-offs) and caches and memory bandwidth shared with the worker."
        )
    if b.cores("others") > 0.5 or a.cores("others") > 0.5:
        notes.append(
            f"processes outside the benchmark (anything else on this machine) took "
            f"{a.cores('others'):.2f} / {b.cores('others'):.2f} cores in phases A / B; on a "
            "shared machine that is other users' load: rerun on a quiet one before concluding."
        )
    return notes


# -- main ------------------------------------------------------------------------------------


def prepare_environment(var_dir: Path, database_url: str, redis_url: str) -> dict[str, str]:
    os.environ["PARKWATCH_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
    for name in _CLEARED_ENV:
        os.environ.pop(name, None)
        os.environ.pop(f"{name}_FILE", None)
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "ALLOW_ANONYMOUS_UPLOADS": "true",
            # Every client comes from 127.0.0.1: the per-client throttle would refuse them.
            "UPLOAD_RATE": "100000000/hour",
            "DEBUG": "false",  # DEBUG would record every SQL query
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
            # No beat runs: each sighting is classified through its own on-commit request.
            "CELERY_BROKER_CONNECTION_TIMEOUT": "2",
        }
    )
    return dict(os.environ)


def gunicorn_command(args: argparse.Namespace, port: int) -> tuple[list[str], str]:
    command = [sys.executable, "-m", "gunicorn"]
    config = next((ROOT / name for name in GUNICORN_CONFIGS if (ROOT / name).is_file()), None)
    if config is not None:
        command += ["--config", str(config)]
    command += [
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.web_workers),
        "--threads",
        str(args.web_threads),
        "webapp.wsgi:application",
    ]
    return command, (str(config.relative_to(ROOT)) if config else "none (plain arguments)")


def worker_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "webapp",
        "worker",
        "-Q",
        "inference",
        "--concurrency",
        "1",
        "--pool",
        "prefork",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--hostname",
        f"load-{os.getpid()}@%h",
    ]


def start_worker(services: Services, args: argparse.Namespace) -> Service:
    env = {}
    if args.worker_cpu_set is not None:
        env["TF_INTRA_OP_THREADS"] = str(len(args.worker_cpu_set))
    worker = services.start(
        "inference-worker", worker_command(), cpus=args.worker_cpu_set, nice=args.worker_nice, **env
    )
    ready = wait_until(
        lambda: b" ready." in worker.log_path.read_bytes() or worker.process.poll() is not None,
        timeout=120,
    )
    if not ready or worker.process.poll() is not None:
        raise BenchError(f"the inference worker did not start:\n{worker.log_tail()}")
    return worker


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.register_xception:
        register_xception(args.register_xception)
        return 0

    own_database = args.database_url is None
    database_url = args.database_url or DEFAULT_DATABASE_URL
    own_redis = args.redis_url is None
    redis_url = args.redis_url or DEFAULT_REDIS_URL
    if not database_url.startswith(("postgres://", "postgresql://")):
        print(f"error: the load benchmark needs PostgreSQL, not {database_url.split(':')[0]}")
        return 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    port = args.port or free_port()

    print("ParkWatch upload load: web tier alone, then with an inference worker")
    print(f"  machine: {cpu_model()}, {cores} cores available, Python {platform.python_version()}")
    print(
        f"  {args.clients} clients x {args.seconds:g} s per phase, gunicorn {args.web_workers} "
        f"workers x {args.web_threads} threads on port {port}, model: {args.model}"
    )
    if args.worker_nice:
        print(f"  inference worker niceness: {args.worker_nice}")
    if args.worker_cpu_set is None:
        print("  CPU pinning: none (inference worker and gunicorn share every core)")
    else:
        print(
            f"  CPU pinning: inference worker on CPU {cpu_text(args.worker_cpu_set)}, gunicorn on "
            f"CPU {cpu_text(args.web_cpu_set)} in both phases (a deployment runs them on "
            "different machines); clients, PostgreSQL and Redis unpinned"
        )
    if not own_database:
        print(
            f"  warning: using {urlsplit(database_url).netloc}{urlsplit(database_url).path} as it "
            "is (--database-url or DATABASE_URL): it is migrated and gets the benchmark's sightings"
        )
    if not own_redis:
        print("  warning: using REDIS_URL as it is (not flushed); its inference queue is shared")

    var_dir = Path(tempfile.mkdtemp(prefix="parkwatch-load-"))
    services: Services | None = None
    backends: DatabaseBackends | None = None
    database_created = False
    exit_code = 0

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        if own_database:
            database_create(database_url)
            database_created = True
        else:
            database_check(database_url)
        redis_check(redis_url, flush=own_redis)
        env = prepare_environment(var_dir, database_url, redis_url)
        services = Services(var_dir, env)
        manage = [sys.executable, "manage.py"]
        setup_log = var_dir / "setup.log"
        print("\nsetting up (not timed)")
        run_step("migrate", [*manage, "migrate", "--noinput"], env, setup_log)
        run_step("seed_demo", [*manage, "seed_demo", "--no-users"], env, setup_log)
        if args.model == "xception":
            run_step(
                "Xception registered",
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--register-xception",
                    str(var_dir),
                ],
                env,
                setup_log,
            )
        started = time.perf_counter()
        photos = make_photos(args.photos)
        mean_kib = sum(p.size for p in photos) / len(photos) / 1024
        print(
            f"  {len(photos)} JPEGs 1600x1200 with GPS EXIF, {mean_kib:.0f} KiB on average: "
            f"{time.perf_counter() - started:.1f} s"
        )
        django_setup()
        backends = DatabaseBackends(database_url)

        command, config = gunicorn_command(args, port)
        web = services.start("gunicorn", command, cpus=args.web_cpu_set)
        if not wait_until(
            lambda: http_answers(port) or web.process.poll() is not None, timeout=60
        ) or (web.process.poll() is not None):
            raise BenchError(f"gunicorn did not start:\n{web.log_tail()}")
        idle = [rss_kib(pid) for pid in process_tree(web.process.pid)]
        print(
            f"  gunicorn up (config: {config}); RSS before any request: "
            f"{sum(idle) / 1024:.0f} MiB in {len(idle)} processes"
        )

        print("\nstarting the inference worker")
        worker = start_worker(services, args)
        # Warm-up, not timed: gunicorn's workers load their views, connections and Pillow, the
        # inference worker loads its model on these sightings.
        warm = run_phase(
            "warm-up",
            port=port,
            photos=photos,
            clients=args.clients,
            seconds=min(3.0, args.seconds),
            web_pid=web.process.pid,
            worker_pid=worker.process.pid,
            database=backends,
            redis_url=redis_url,
            first_photo=0,
        )
        if not warm.accepted:
            raise BenchError(
                f"no upload was accepted during the warm-up ({dict(warm.errors)}):\n{web.log_tail()}"
            )
        drained = drain(warm, args, worker)
        print(
            f"  warm-up: {len(warm.accepted)} uploads, classified "
            + (f"{drained:.1f} s after (model loading included)" if drained is not None else "late")
        )

        # A and B alternate A B B A ..., so that drifting load from elsewhere on the machine
        # and the growing tables weigh on both phases alike.
        schedule = [
            phase
            for r in range(args.rounds)
            for phase in (("A", "B") if r % 2 == 0 else ("B", "A"))
        ]
        slice_seconds = args.seconds / args.rounds
        print(
            f"\n{args.rounds} rounds of A (web only, the worker paused) and B (web + inference "
            f"worker), {slice_seconds:g} s each"
        )
        parts: dict[str, list[PhaseResult]] = {"A": [], "B": []}
        next_photo = len(warm.uploads)
        for index, phase in enumerate(schedule, start=1):
            if phase == "A":
                worker.pause()
            try:
                part = run_phase(
                    phase,
                    port=port,
                    photos=photos,
                    clients=args.clients,
                    seconds=slice_seconds,
                    web_pid=web.process.pid,
                    worker_pid=worker.process.pid,
                    database=backends,
                    redis_url=redis_url,
                    first_photo=next_photo,
                )
            finally:
                if phase == "A":
                    worker.resume()
            next_photo += len(part.uploads)
            uuids = [u.client_uuid for u in part.accepted]
            waiting = unclassified(uuids)
            drained = drain(part, args, worker)
            after = f"{drained:.1f} s after" if drained is not None else "not all in time"
            print(
                f"  {index}/{len(schedule)} {phase}: {len(part.accepted)} accepted in "
                f"{part.elapsed:.1f} s, {part.per_second:.2f}/s; "
                f"{len(uuids) - waiting} classified by its end, the rest {after}"
            )
            parts[phase].append(part)
        phase_a = PhaseResult.merge("A: web only", parts["A"])
        phase_b = PhaseResult.merge("B: web + inference", parts["B"])
        round_ratios = [
            b.per_second / a.per_second if a.per_second else float("nan")
            for a, b in zip(parts["A"], parts["B"], strict=True)
        ]
        b_uuids = [u.client_uuid for u in phase_b.accepted]

        accepted = [u.client_uuid for p in (warm, phase_a, phase_b) for u in p.accepted]
        refused = [
            u.client_uuid for p in (warm, phase_a, phase_b) for u in p.uploads if u.status != "201"
        ]
        loss = check_nothing_lost(accepted, refused, own_database=own_database)
        spot = api_spot_check(port, sighting_uuids(b_uuids[:3]))

        print(
            "\nresults (upload: request sent to answer received; suggestion: request sent to "
            "the AI suggestion written, phase B; memory: gunicorn master + workers)"
        )
        print_table([phase_a, phase_b])
        ratio = phase_b.per_second / phase_a.per_second if phase_a.per_second else float("nan")
        verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
        print(
            f"\n  upload throughput B / A: {ratio:.2f}  (target >= {TARGET_RATIO}: the web never "
            f"waits on the model)  {verdict}"
        )
        print("    per round: " + ", ".join(f"{r:.2f}" for r in round_ratios))
        share = phase_b.cores("web") / phase_a.cores("web") if phase_a.cpu["web"] else math.nan
        efficiency = web_ms_per_upload(phase_a) / web_ms_per_upload(phase_b)
        print(
            f"    = CPU the web got, B / A ({share:.2f}) x uploads per web CPU second, B / A "
            f"({efficiency:.2f}): below 1 on the left with CPU to spare means waiting, on the "
            "right more work per upload"
        )
        print(f"  nothing lost: {'PASS' if loss.ok else 'FAIL'}")
        for line in loss.lines:
            print(f"    {line}")
        print(f"    API, three phase-B sightings: {'; '.join(spot)}")
        pinned = (
            "no pinning"
            if args.worker_cpu_set is None
            else f"worker on CPU {cpu_text(args.worker_cpu_set)}, gunicorn on "
            f"{cpu_text(args.web_cpu_set)}"
        )
        print(
            f"  pinning: {pinned}; worker niceness {args.worker_nice}; "
            f"date {date.today().isoformat()}"
        )
        print(
            f"  per accepted upload, gunicorn ran on a CPU {web_ms_per_upload(phase_a):.0f} ms "
            f"in A, {web_ms_per_upload(phase_b):.0f} ms in B, and waited for one (runnable, "
            f"not running) {web_wait_ms_per_upload(phase_a):.0f} ms in A, "
            f"{web_wait_ms_per_upload(phase_b):.0f} ms in B"
        )
        notes = diagnose(
            phase_a,
            phase_b,
            cores or 1,
            failed=verdict == "FAIL",
            pinned=args.worker_cpu_set is not None,
        )
        for note in notes:
            print(f"  note: {note}")
    except BenchError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        exit_code = 2
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        exit_code = 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish cleaning up once started
        if services is not None:
            services.stop_all()
        if backends is not None:
            with contextlib.suppress(Exception):
                backends.close()
        if "django" in sys.modules:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
        if database_created:
            try:
                database_drop(database_url)
            except Exception as error:  # noqa: BLE001 - cleanup goes on
                print(f"warning: could not drop the benchmark database: {error}", file=sys.stderr)
        if own_redis:
            with contextlib.suppress(Exception):
                redis_check(redis_url, flush=True)
        if args.keep:
            print(f"kept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
