"""A real S3-compatible server for the tests: moto's server mode, on a free loopback port.

`s3_server` starts one `python -m moto.server` process for the session; `s3` gives each test a
bucket of its own and switches STORAGES to it exactly as production settings do (through
`webapp.storage_settings.s3_storages`). Nothing of boto is mocked: every call goes over HTTP.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from webapp.storage_settings import s3_storages

ACCESS_KEY = "parkwatch-test"
SECRET_KEY = "parkwatch-test-secret"  # noqa: S105
REGION = "us-east-1"
_buckets = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoServer:
    """One `moto.server` process; `stop()` kills it (the storage outage of the readiness test)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> MotoServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto.server exited with {self.process.returncode}")
            try:
                self.client().list_buckets()
                return self
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto.server did not answer on {self.endpoint} in {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self):
        """A boto3 client with the test credentials: what an operator's tools would use."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
        )

    def storages(self, bucket: str, **options) -> dict:
        """STORAGES for `bucket` on this server, built as settings.py builds them from env."""
        return s3_storages(
            bucket=bucket,
            endpoint_url=self.endpoint,
            region_name=REGION,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            connect_timeout=2,
            read_timeout=10,
            **options,
        )


@dataclass
class Bucket:
    """A bucket the storages point at, with a client to look inside it."""

    server: MotoServer
    name: str

    @property
    def client(self):
        return self.server.client()

    def object_keys(self, prefix: str = "") -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for item in listing.get("Contents", ()))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def object_url(self, key: str) -> str:
        """The object's plain (unsigned) address on the server."""
        return f"{self.server.endpoint}/{self.name}/{key}"

    def is_its_url(self, url: str) -> bool:
        return url.startswith(f"{self.server.endpoint}/{self.name}/")

    @staticmethod
    def key_of(url: str) -> str:
        return urlsplit(url).path.split("/", 2)[2]


def new_bucket(server: MotoServer) -> str:
    name = f"parkwatch-test-{next(_buckets)}"
    server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def s3_server():
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, settings) -> Bucket:
    """A fresh bucket, and every storage (public, originals, models) moved into it."""
    name = new_bucket(s3_server)
    settings.STORAGES = {**settings.STORAGES, **s3_server.storages(name)}
    return Bucket(s3_server, name)
