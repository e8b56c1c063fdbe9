"""Photos in an S3 bucket (moto's server, over HTTP): where they go, who can read them.

Every object is private; pages and the API hand out signed URLs of the public derivatives, and
never any address of an original. moto serves a presigned URL without checking its signature,
so the signatures are checked here as S3 and MinIO check them (SigV4, from the secret key).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import io
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from django.conf import settings
from django.urls import reverse
from PIL import ExifTags, Image

from observations.exports.records import photo_url
from observations.models import Photo
from tests import s3 as moto
from tests.conftest import ORDESA
from tests.images import make_photo, upload
from tests.observations.api.conftest import JUNE_FIRST, post_sighting
from tests.s3 import SECRET_KEY

s3_server, s3 = moto.s3_server, moto.s3  # fixtures: a moto server, a bucket of its own

pytestmark = pytest.mark.django_db


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def signature_is_valid(url: str, *, secret: str = SECRET_KEY, now: datetime | None = None) -> bool:
    """S3's own check of a presigned GET: SigV4 over the path and query, and not expired."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    signature = query.pop("X-Amz-Signature", "")
    if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return False
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    age = ((now or datetime.now(UTC)) - signed_at).total_seconds()
    if age > int(query["X-Amz-Expires"]):
        return False
    canonical_query = "&".join(
        f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}"
        for key, value in sorted(query.items())
    )
    canonical_request = "\n".join(
        ["GET", parts.path, canonical_query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"]
    )
    scope = query["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            query["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def upload_one(api_client):
    sent = make_photo(gps=ORDESA, accuracy=5, taken_at=JUNE_FIRST, seed=7)
    response = post_sighting(api_client, [upload(sent)])
    assert response.status_code == 201, response.json()
    return sent, response.json()


def test_an_upload_stores_original_derivative_and_thumbnail_under_their_prefixes(
    client, campaign, s3
):
    sent, body = upload_one(client)

    photo = Photo.objects.get()
    stem = body["uuid"].replace("-", "")
    month = photo.observation.received_at.strftime("%Y/%m")
    assert s3.object_keys() == [
        f"originals/originals/{month}/{stem}-1.jpg",
        f"public/photos/{month}/{stem}-1.jpg",
        f"public/thumbnails/{month}/{stem}-1-thumb.jpg",
    ]
    # The original is the file as sent, GPS and all; the derivatives are re-encoded without EXIF.
    assert s3.read(f"originals/originals/{month}/{stem}-1.jpg") == sent
    for key in s3.object_keys("public/"):
        image = Image.open(io.BytesIO(s3.read(key)))
        assert image.format == "JPEG"
        assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert hashlib.sha256(sent).hexdigest() == photo.sha256


def test_every_object_is_private_and_an_unsigned_get_is_refused(client, campaign, s3):
    upload_one(client)

    for key in s3.object_keys():
        grants = s3.client.get_object_acl(Bucket=s3.name, Key=key)["Grants"]
        assert all(g["Grantee"].get("URI", "").endswith("/AllUsers") is False for g in grants)
        assert all(g["Grantee"]["Type"] == "CanonicalUser" for g in grants), grants
        assert fetch(s3.object_url(key))[0] == 403, key


def test_the_api_gives_signed_urls_of_the_derivatives_that_fetch_the_jpeg(client, campaign, s3):
    _sent, body = upload_one(client)

    urls = [body["photos"][0]["image"], body["photos"][0]["thumbnail"]]
    for url in urls:
        assert s3.is_its_url(url), url
        assert s3.key_of(url).startswith(("public/photos/", "public/thumbnails/"))
        query = dict(parse_qsl(urlsplit(url).query))
        assert query["X-Amz-Expires"] == "3600"
        assert signature_is_valid(url)
        status, data = fetch(url)
        assert status == 200
        assert data == s3.read(s3.key_of(url))
        assert data.startswith(b"\xff\xd8\xff")


def test_a_tampered_or_expired_signature_does_not_verify(client, campaign, s3):
    _sent, body = upload_one(client)
    url = body["photos"][0]["image"]
    original_key = s3.object_keys("originals/")[0]

    assert signature_is_valid(url)
    # Another object with the same signature: the original next to it.
    assert not signature_is_valid(url.replace(s3.key_of(url).split("?")[0], original_key))
    assert not signature_is_valid(url.replace("X-Amz-Expires=3600", "X-Amz-Expires=360000"))
    assert not signature_is_valid(url, secret="not-the-secret")
    later = datetime.now(UTC).timestamp() + 3601
    assert not signature_is_valid(url, now=datetime.fromtimestamp(later, UTC))


def test_the_sighting_page_shows_the_same_signed_urls_and_never_an_original(client, campaign, s3):
    _sent, body = upload_one(client)

    page = client.get(reverse("sighting-detail", kwargs={"uuid": body["uuid"]}))

    assert page.status_code == 200
    text = page.content.decode()
    urls = {html.unescape(u) for u in re.findall(r'(?:src|href)="(http[^"]+)"', text)}
    photo_urls = {u for u in urls if s3.is_its_url(u)}
    assert {s3.key_of(u) for u in photo_urls} == set(s3.object_keys("public/photos/"))
    assert all(signature_is_valid(u) for u in photo_urls)
    assert all(fetch(u)[0] == 200 for u in photo_urls)
    assert "originals/" not in text
    assert "originals/" not in str(body)


def test_signed_urls_can_name_the_address_browsers_use(client, campaign, s3, s3_server, settings):
    # docker compose: servers reach MinIO as http://minio:9000, browsers at a published port.
    settings.STORAGES = {
        **settings.STORAGES,
        **s3_server.storages(s3.name, public_endpoint_url="http://media.example.org:9000"),
    }
    _sent, body = upload_one(client)

    url = body["photos"][0]["image"]
    assert url.startswith(f"http://media.example.org:9000/{s3.name}/public/photos/")
    assert signature_is_valid(url)
    # Same object, same signature rules: served once the host is the server's own.
    direct = url.replace("http://media.example.org:9000", s3_server.endpoint)
    assert fetch(direct)[0] == 200


def test_a_failed_upload_leaves_nothing_in_the_bucket(client, campaign, s3):
    good = upload(make_photo(seed=3))
    bad = upload(b"%PDF-1.7 not a photo", "photo.jpg")

    response = post_sighting(client, [good, bad])

    assert response.status_code == 400
    assert s3.object_keys() == []
    assert Photo.objects.count() == 0


def test_exports_link_stable_addresses_that_redirect_to_a_fresh_signed_url(client, campaign, s3):
    upload_one(client)
    photo = Photo.objects.get()

    link = photo_url(photo.image.name)

    assert link == f"{settings.SITE_URL}/media/{photo.image.name}"  # no signature to expire
    response = client.get(urlsplit(link).path)
    assert response.status_code == 302
    assert signature_is_valid(response["Location"])
    assert fetch(response["Location"]) == (200, s3.read(f"public/{photo.image.name}"))
    # Only derivatives are reachable this way, never an original.
    original = s3.object_keys("originals/")[0].removeprefix("originals/")
    assert client.get(f"/media/{original}").status_code == 404
    assert client.get("/media/photos/../../originals/x.jpg").status_code in (400, 404)
