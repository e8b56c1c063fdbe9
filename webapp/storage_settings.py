"""The STORAGES setting: local folders (`make run`) or one S3-compatible bucket (production).

Three aliases, the same in both: `default` for the public derivatives (re-encoded, no EXIF),
`originals` for photos exactly as sent (never served) and `models` for classifier weights and
written exports. In a bucket they are the prefixes `public/`, `originals/` and `models/`; every
object is private and the derivatives reach browsers as signed URLs that expire.
"""

from __future__ import annotations

from pathlib import Path

S3_BACKEND = "observations.storage_s3.S3Storage"
LOCAL_BACKEND = "django.core.files.storage.FileSystemStorage"


def local_storages(*, private_root: Path, models_root: Path) -> dict:
    """Folders on this machine; `default` is MEDIA_ROOT, served under MEDIA_URL (make run)."""
    return {
        "default": {"BACKEND": LOCAL_BACKEND},
        "originals": {
            "BACKEND": LOCAL_BACKEND,
            "OPTIONS": {"location": str(private_root), "base_url": None},
        },
        "models": {
            "BACKEND": LOCAL_BACKEND,
            "OPTIONS": {"location": str(models_root), "base_url": None},
        },
    }


def s3_storages(
    *,
    bucket: str,
    endpoint_url: str | None = None,
    public_endpoint_url: str | None = None,
    region_name: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    addressing_style: str | None = None,
    querystring_expire: int = 3600,
    originals_expire: int = 300,
    connect_timeout: float = 5,
    read_timeout: float = 60,
    max_attempts: int = 3,
) -> dict:
    """One bucket, three prefixes, nothing public.

    `public_endpoint_url` is the address browsers use when it differs from the one the servers
    use (MinIO in docker compose); signed URLs are made for it. Short timeouts and few retries:
    a storage outage shows in /readyz and in a failed upload within seconds, not minutes.
    """
    from botocore.config import Config

    client_config = Config(
        signature_version="s3v4",
        s3={"addressing_style": addressing_style} if addressing_style else None,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
    )
    common = {
        "bucket_name": bucket,
        "endpoint_url": endpoint_url or None,
        "public_endpoint_url": public_endpoint_url or None,
        "region_name": region_name or None,
        "access_key": access_key or None,
        "secret_key": secret_key or None,
        "client_config": client_config,
        "default_acl": None,  # no ACL header: objects stay private to the bucket's owner
        "querystring_auth": True,
        "querystring_expire": querystring_expire,
        "file_overwrite": False,
    }
    return {
        "default": {"BACKEND": S3_BACKEND, "OPTIONS": {**common, "location": "public"}},
        "originals": {
            "BACKEND": S3_BACKEND,
            "OPTIONS": {**common, "location": "originals", "querystring_expire": originals_expire},
        },
        "models": {"BACKEND": S3_BACKEND, "OPTIONS": {**common, "location": "models"}},
    }
