import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from observations.models import Campaign, Park, Taxon
from observations.roles import is_admin, is_curator
from observations.services.demo import DEMO_PASSWORDS
from observations.services.parks import park_for_point

pytestmark = pytest.mark.django_db


def test_it_creates_the_default_campaign_park_taxa_and_users():
    call_command("seed_demo", verbosity=0)

    campaign = Campaign.objects.get(is_default=True)
    assert campaign.name == "Invasive plants of Ordesa y Monte Perdido"
    park = campaign.parks.get()
    assert park.boundary_is_approximate
    assert park_for_point(latitude=42.6415, longitude=-0.0532) == park  # the Ordesa valley
    invasive = set(campaign.taxa.filter(is_invasive=True).values_list("scientific_name", flat=True))
    assert {
        "Buddleja davidii",
        "Reynoutria japonica",
        "Ailanthus altissima",
        "Heracleum mantegazzianum",
    } <= invasive
    assert len(invasive) >= 10
    assert campaign.taxa.filter(is_invasive=False).count() >= 3  # native look-alikes
    assert Taxon.objects.filter(is_sensitive=True).exists()
    for username, password in DEMO_PASSWORDS.items():
        assert authenticate(username=username, password=password) is not None
    assert is_curator(authenticate(username="curator", password=DEMO_PASSWORDS["curator"]))
    assert is_admin(authenticate(username="admin", password=DEMO_PASSWORDS["admin"]))
    assert not is_curator(authenticate(username="visitor", password=DEMO_PASSWORDS["visitor"]))


def test_it_can_run_again_without_copies():
    call_command("seed_demo", verbosity=0)
    counts = (Campaign.objects.count(), Park.objects.count(), Taxon.objects.count())

    call_command("seed_demo", verbosity=0)

    assert (Campaign.objects.count(), Park.objects.count(), Taxon.objects.count()) == counts
