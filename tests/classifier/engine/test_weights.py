import hashlib

import pytest

from classifier.engine.weights import WeightsIntegrityError, sha256_file, verify_sha256


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "final_model.h5"
    path.write_bytes(b"\x89HDF\r\n" + bytes(range(256)) * 5000)  # > one 1 MiB read chunk
    return path


def test_sha256_file_matches_hashlib(weights):
    assert sha256_file(weights) == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_verify_accepts_the_registered_digest_in_any_usual_spelling(weights):
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert verify_sha256(weights, digest) == digest
    assert verify_sha256(weights, f"sha256:{digest.upper()}  ") == digest


def test_verify_refuses_a_file_whose_bytes_changed(weights):
    digest = sha256_file(weights)
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(WeightsIntegrityError, match="refusing to load") as caught:
        verify_sha256(weights, digest)
    assert caught.value.expected == digest
    assert caught.value.actual == sha256_file(weights)
    assert str(weights) in str(caught.value)


def test_verify_rejects_a_malformed_digest(weights):
    with pytest.raises(ValueError, match="not a SHA-256"):
        verify_sha256(weights, "abc123")
