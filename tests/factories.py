from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from observations.models import Campaign, Park, Taxon
from observations.roles import ADMIN_GROUP, CURATOR_GROUP, VISITOR_GROUP


def square(latitude: float, longitude: float, half_side: float = 0.05) -> dict:
    """A GeoJSON square around a point ([longitude, latitude] order)."""
    ring = [
        [longitude - half_side, latitude - half_side],
        [longitude + half_side, latitude - half_side],
        [longitude + half_side, latitude + half_side],
        [longitude - half_side, latitude + half_side],
        [longitude - half_side, latitude - half_side],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct horse battery")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get_or_create(name=extracted)[0])
            if extracted == ADMIN_GROUP:
                self.is_staff = True
                self.save(update_fields=["is_staff"])


class TaxonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Taxon
        django_get_or_create = ("scientific_name",)

    scientific_name = factory.Sequence(lambda n: f"Testus species{n}")
    common_name = factory.Sequence(lambda n: f"Test plant {n}")
    family = "Testaceae"
    is_invasive = True


class ParkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Park
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Park {n}")
    slug = factory.Sequence(lambda n: f"park-{n}")
    boundary = factory.LazyFunction(lambda: square(42.65, -0.05, 0.1))
    timezone = "Europe/Madrid"
    country_code = "ES"


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Campaign {n}")
    slug = factory.Sequence(lambda n: f"campaign-{n}")
    is_default = False


__all__ = ["VISITOR_GROUP", "CURATOR_GROUP", "ADMIN_GROUP"]
