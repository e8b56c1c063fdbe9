"""Integrity of weight files: a model is only loaded if its bytes are the ones registered."""

from __future__ import annotations

import hashlib
import os
import re

_CHUNK = 1024 * 1024
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class WeightsIntegrityError(Exception):
    """A weights file does not have the SHA-256 it was registered with."""

    def __init__(self, path: str | os.PathLike[str], expected: str, actual: str) -> None:
        self.path = os.fspath(path)
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"weights file {self.path} has SHA-256 {actual}, expected {expected}: "
            "the file is corrupt or was replaced; refusing to load it"
        )


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def normalise_sha256(value: str) -> str:
    """Lower-case hex digest; accepts a "sha256:" prefix. Raises ValueError if malformed."""
    digest = value.strip().lower()
    digest = digest.removeprefix("sha256:")
    if not _SHA256_HEX.match(digest):
        raise ValueError(f"not a SHA-256 hex digest: {value!r}")
    return digest


def verify_sha256(path: str | os.PathLike[str], expected: str) -> str:
    """Check a file against its registered SHA-256; return the digest or raise on mismatch."""
    wanted = normalise_sha256(expected)
    actual = sha256_file(path)
    if actual != wanted:
        raise WeightsIntegrityError(path, wanted, actual)
    return actual
