from __future__ import annotations

import os
import shutil

import pytest
from django.core.cache import cache

from observations.roles import ADMIN_GROUP, CURATOR_GROUP, VISITOR_GROUP
from tests.factories import CampaignFactory, ParkFactory, TaxonFactory, UserFactory

# Ordesa y Monte Perdido's valley: inside the test park below.
ORDESA = (42.6415, -0.0532)
OUTSIDE = (40.4168, -3.7038)  # Madrid: in no park


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    """Each test writes its files to its own folders and starts with empty throttles."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PRIVATE_MEDIA_ROOT = str(tmp_path / "private")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "originals": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "private"), "base_url": None},
        },
        "models": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "models"), "base_url": None},
        },
    }
    cache.clear()
    yield
    cache.clear()


def stored_files(settings) -> list[str]:
    """Every file in the public and private media folders."""
    found = []
    for root in (settings.MEDIA_ROOT, settings.PRIVATE_MEDIA_ROOT):
        for folder, _dirs, files in os.walk(root):
            found.extend(os.path.join(folder, name) for name in files)
    return found


@pytest.fixture
def visitor(db):
    return UserFactory(username="visitor", role=VISITOR_GROUP)


@pytest.fixture
def other_visitor(db):
    return UserFactory(username="other-visitor", role=VISITOR_GROUP)


@pytest.fixture
def curator(db):
    return UserFactory(username="curator", role=CURATOR_GROUP)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin", role=ADMIN_GROUP)


@pytest.fixture
def park(db):
    return ParkFactory(name="Ordesa y Monte Perdido", slug="ordesa", timezone="Europe/Madrid")


@pytest.fixture
def taxa(db):
    return [
        TaxonFactory(scientific_name="Buddleja davidii", common_name="Butterfly bush"),
        TaxonFactory(scientific_name="Reynoutria japonica", common_name="Japanese knotweed"),
        TaxonFactory(scientific_name="Ailanthus altissima", common_name="Tree of heaven"),
        TaxonFactory(
            scientific_name="Cypripedium calceolus",
            common_name="Lady's-slipper orchid",
            is_invasive=False,
            is_sensitive=True,
        ),
    ]


@pytest.fixture
def campaign(db, park, taxa):
    campaign = CampaignFactory(
        name="Invasive plants of Ordesa", slug="ordesa-invasives", is_default=True
    )
    campaign.parks.add(park)
    campaign.taxa.add(*taxa)
    return campaign


@pytest.fixture
def clean_var():
    """Remove a folder tree after a test that made one."""
    made: list[str] = []
    yield made.append
    for path in made:
        shutil.rmtree(path, ignore_errors=True)
