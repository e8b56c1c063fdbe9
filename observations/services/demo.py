"""Demo data: the default campaign of Ordesa y Monte Perdido, its park, taxa and demo users."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from observations.models import Campaign, Park, ParkContact, Taxon
from observations.roles import ADMIN_GROUP, ALL_GROUPS, CURATOR_GROUP, VISITOR_GROUP

# An approximate outline of Ordesa y Monte Perdido National Park (Huesca, Spain) drawn around
# Torla, the Ordesa valley, Monte Perdido, Añisclo, Escuaín and Pineta. It is labelled
# approximate: replace it with the official boundary before relying on park assignment.
ORDESA_BOUNDARY = {
    "type": "Polygon",
    "coordinates": [
        [
            [-0.130, 42.620],
            [-0.080, 42.690],
            [0.000, 42.700],
            [0.080, 42.700],
            [0.130, 42.670],
            [0.150, 42.600],
            [0.100, 42.540],
            [0.030, 42.540],
            [-0.030, 42.580],
            [-0.100, 42.600],
            [-0.130, 42.620],
        ]
    ],
}

# (scientific name, authorship, common name, Spanish name, family, invasive, sensitive)
DEMO_TAXA = [
    (
        "Buddleja davidii",
        "Franch.",
        "Butterfly bush",
        "Arbusto de las mariposas",
        "Scrophulariaceae",
        True,
        False,
    ),
    (
        "Reynoutria japonica",
        "Houtt.",
        "Japanese knotweed",
        "Hierba nudosa japonesa",
        "Polygonaceae",
        True,
        False,
    ),
    (
        "Ailanthus altissima",
        "(Mill.) Swingle",
        "Tree of heaven",
        "Ailanto",
        "Simaroubaceae",
        True,
        False,
    ),
    ("Robinia pseudoacacia", "L.", "Black locust", "Falsa acacia", "Fabaceae", True, False),
    (
        "Impatiens glandulifera",
        "Royle",
        "Himalayan balsam",
        "Balsamina del Himalaya",
        "Balsaminaceae",
        True,
        False,
    ),
    (
        "Senecio inaequidens",
        "DC.",
        "Narrow-leaved ragwort",
        "Senecio del Cabo",
        "Asteraceae",
        True,
        False,
    ),
    (
        "Cortaderia selloana",
        "(Schult. & Schult.f.) Asch. & Graebn.",
        "Pampas grass",
        "Hierba de la Pampa",
        "Poaceae",
        True,
        False,
    ),
    ("Erigeron canadensis", "L.", "Canadian horseweed", "Coniza", "Asteraceae", True, False),
    (
        "Solidago canadensis",
        "L.",
        "Canada goldenrod",
        "Vara de oro canadiense",
        "Asteraceae",
        True,
        False,
    ),
    (
        "Heracleum mantegazzianum",
        "Sommier & Levier",
        "Giant hogweed",
        "Perejil gigante",
        "Apiaceae",
        True,
        False,
    ),
    ("Arundo donax", "L.", "Giant reed", "Caña común", "Poaceae", True, False),
    (
        "Symphyotrichum novi-belgii",
        "(L.) G.L.Nesom",
        "New York aster",
        "Áster de Nueva York",
        "Asteraceae",
        True,
        False,
    ),
    # Native look-alikes a visitor may confuse with the invasives above.
    ("Heracleum sphondylium", "L.", "Common hogweed", "Pie de oso", "Apiaceae", False, False),
    (
        "Jacobaea vulgaris",
        "Gaertn.",
        "Common ragwort",
        "Hierba de Santiago",
        "Asteraceae",
        False,
        False,
    ),
    (
        "Impatiens noli-tangere",
        "L.",
        "Touch-me-not balsam",
        "Hierba de Santa Catalina",
        "Balsaminaceae",
        False,
        False,
    ),
    ("Solidago virgaurea", "L.", "European goldenrod", "Vara de oro", "Asteraceae", False, False),
    # Protected in the park: its positions are generalised in every public output.
    (
        "Cypripedium calceolus",
        "L.",
        "Lady's-slipper orchid",
        "Zapatito de dama",
        "Orchidaceae",
        False,
        True,
    ),
]

DEMO_PASSWORDS = {
    "visitor": "parkwatch-visitor",
    "curator": "parkwatch-curator",
    "admin": "parkwatch-admin",
}


@dataclass(frozen=True)
class DemoSeed:
    campaign: Campaign
    park: Park
    taxa: list[Taxon]
    users: dict


@transaction.atomic
def demo_seed(*, with_users: bool = True) -> DemoSeed:
    """Create or update the demo campaign, park, taxa and users. Safe to run again."""
    for name in ALL_GROUPS:
        Group.objects.get_or_create(name=name)

    park, _ = Park.objects.update_or_create(
        slug="ordesa",
        defaults={
            "name": "Ordesa y Monte Perdido National Park",
            "boundary": ORDESA_BOUNDARY,
            "boundary_is_approximate": True,
            "timezone": "Europe/Madrid",
            "country_code": "ES",
        },
    )
    taxa = []
    for scientific, authorship, common, spanish, family, invasive, sensitive in DEMO_TAXA:
        taxon, _ = Taxon.objects.update_or_create(
            scientific_name=scientific,
            defaults={
                "authorship": authorship,
                "common_name": common,
                "common_names": {"es": spanish},
                "family": family,
                "kingdom": "Plantae",
                "rank": Taxon.Rank.SPECIES,
                "is_invasive": invasive,
                "is_sensitive": sensitive,
            },
        )
        taxa.append(taxon)

    campaign = Campaign.objects.filter(is_default=True).first()
    if campaign is None or campaign.slug == "ordesa-invasive-plants":
        campaign, _ = Campaign.objects.update_or_create(
            slug="ordesa-invasive-plants",
            defaults={
                "name": "Invasive plants of Ordesa y Monte Perdido",
                "description": (
                    "Early detection of invasive alien plants in Ordesa y Monte Perdido National "
                    "Park: photograph a plant you suspect, and an expert confirms it."
                ),
                "is_default": True,
                "is_active": True,
            },
        )
    campaign.parks.add(park)
    campaign.taxa.add(*taxa)
    # Alerts in the demo go to the console e-mail backend (no SMTP host set).
    ParkContact.objects.get_or_create(
        park=park,
        name="Park managers (demo)",
        defaults={"email": "managers@ordesa.parkwatch.invalid"},
    )

    users = {}
    if with_users:
        User = get_user_model()
        for username, group in (
            ("visitor", VISITOR_GROUP),
            ("curator", CURATOR_GROUP),
            ("admin", ADMIN_GROUP),
        ):
            user, created = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@parkwatch.invalid"}
            )
            if created:
                user.set_password(DEMO_PASSWORDS[username])
            if username == "admin":
                user.is_staff = user.is_superuser = True
            user.save()
            user.groups.add(Group.objects.get(name=group))
            users[username] = user
        campaign.curators.add(users["curator"], users["admin"])
        campaign.lead_curators.add(users["admin"])
    return DemoSeed(campaign=campaign, park=park, taxa=taxa, users=users)
