"""Private backing services and a real web process on loopback, for fault tests and benchmarks.

Each helper starts its own process on a free 127.0.0.1 port with its own data folder, never
the machine's shared Redis (6379) or PostgreSQL (5432), and stops it on exit even when the
code inside the `with` block fails:

    with RedisServer() as redis, PostgresCluster(tmp) as pg, WebServer(env=...) as web:
        redis.stop(); redis.start()          # an outage, then the same port again
        pg.restart()                         # pg_ctl restart -m fast
        http_request("GET", web.url("/readyz"))
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _wait(predicate, *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def _stop_group(process: subprocess.Popen | None, *, grace: float = 10) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there after `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# Redis ------------------------------------------------------------------------------------------


class RedisServer:
    """A private `redis-server` (no persistence) on a free port; `url(db)` addresses it.

    `stop()` kills it (SIGKILL by default: queued messages are lost, as in a crash) and
    `start()` brings a fresh, empty one back on the same port; `freeze()` and `thaw()` hang
    it and let it go on.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="parkwatch-redis-"))
        self.log_path = self._dir / "redis.log"

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        command = [
            shutil.which("redis-server") or "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        _wait(
            lambda: port_open(self.port) or self.process.poll() is not None,
            timeout=15,
            what=f"redis-server on port {self.port}",
            log=self.log_path,
        )
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited:\n{self.log_path.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=10)
        _wait(lambda: not port_open(self.port), timeout=10, what="redis-server to stop")

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung server, a partition)."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()  # a frozen server would ignore SIGTERM until the SIGKILL
        _stop_group(self.process)
        shutil.rmtree(self._dir, ignore_errors=True)


# PostgreSQL -------------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: `pg_config --bindir`, else the newest Debian cluster's."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found:
            candidates.append(Path(found))
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


class PostgresCluster:
    """A private PostgreSQL cluster (trust auth, fsync off) on a free port.

    initdb refuses to run as root, so as root the cluster belongs to the `postgres` user and
    every server command runs through `runuser`.
    """

    def __init__(self, port: int | None = None) -> None:
        self.bindir = postgres_bindir()
        if self.bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found")
        self.port = port or free_port()
        # Not under pytest's tmp_path: it is private to root, and the server may run as postgres.
        self._dir = Path(tempfile.mkdtemp(prefix="parkwatch-pg-"))
        self.data = self._dir / "data"
        self.log_path = self._dir / "server.log"
        self._user = "postgres" if os.geteuid() == 0 else None
        self._started = False

    @staticmethod
    def available() -> bool:
        return postgres_bindir() is not None

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = 60) -> None:
        full = [str(self.bindir / command[0]), *command[1:]]
        if self._user:
            full = ["runuser", "-u", self._user, "--", *full]
        result = subprocess.run(
            full, capture_output=True, text=True, timeout=timeout, check=False, cwd=self._dir
        )
        if result.returncode != 0:
            log = (
                self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            )
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n{log}"
            )

    def _pg_ctl(self, action: str, *extra: str, timeout: float = 60) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=50"
        )
        self._run(
            "pg_ctl", action, "-D", str(self.data), "-l", str(self.log_path), "-w",
            "-t", str(int(timeout)), "-o", options, *extra,
            timeout=timeout + 10,
        )  # fmt: skip

    def start(self) -> None:
        if not self.data.exists():
            if self._user:
                shutil.chown(self._dir, self._user, self._user)
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--no-sync", "--no-instructions",
            )  # fmt: skip
        self._pg_ctl("start")
        self._started = True

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")
        self._started = False

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")
        self._started = True

    def create_database(self, name: str) -> str:
        """Create a database (owned by postgres) and return its DATABASE_URL."""
        import psycopg2

        connection = psycopg2.connect(self.url("postgres"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)

    def __enter__(self) -> PostgresCluster:
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self._started:
            try:
                self._run(
                    "pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", timeout=30
                )
            except Exception:  # noqa: BLE001 (best effort: fall back to killing the postmaster)
                pid_file = self.data / "postmaster.pid"
                if pid_file.exists():
                    with contextlib.suppress(OSError, ValueError):
                        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self._dir, ignore_errors=True)


# The web process --------------------------------------------------------------------------------


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run `manage.py <args>` in a subprocess with this environment; its output, or raise."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


class WebServer:
    """gunicorn serving `webapp.wsgi:application` on a free loopback port (sync workers)."""

    def __init__(
        self, *, env: dict[str, str], log_path: Path, workers: int = 2, timeout: int = 30
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.workers = workers
        self.timeout = timeout
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> WebServer:
        command = [
            sys.executable, "-m", "gunicorn", "webapp.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers),
            "--timeout", str(self.timeout),
            "--graceful-timeout", "5",
            "--access-logfile", "-",
            "--error-logfile", "-",
            "--log-level", "info",
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait(
                lambda: self.process.poll() is not None or _answers(self.url("/healthz")),
                timeout=60,
                what="gunicorn to answer /healthz",
                log=self.log_path,
            )
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log()[-3000:]}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        _stop_group(self.process)
        self._log.close()


def _answers(url: str) -> bool:
    try:
        return http_request("GET", url, timeout=2).status == 200
    except OSError:
        return False


# HTTP -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


def http_request(
    method: str,
    url: str,
    *,
    fields: dict[str, str] | None = None,
    files: list[tuple[str, str, bytes, str]] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> HttpResponse:
    """One HTTP request with the standard library; `files` are (field, name, bytes, type).

    Any status comes back as a response (4xx and 5xx included); only a failed connection or a
    timeout raises (OSError).
    """
    headers = dict(headers or {})
    data = None
    if fields or files:
        boundary = uuid.uuid4().hex
        parts: list[bytes] = []
        for name, value in (fields or {}).items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        for field, filename, content, content_type in files or []:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
                + content
                + b"\r\n"
            )
        parts.append(f"--{boundary}--\r\n".encode())
        data = b"".join(parts)
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
            status, got, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, got, body = error.code, error.headers, error.read()
    return HttpResponse(
        status=status,
        headers={key.lower(): value for key, value in got.items()},
        body=body,
        seconds=time.monotonic() - started,
    )
