import pytest

from observations.errors import ParkWatchError
from observations.services.parks import park_boundary_check, park_for_point
from tests.factories import ParkFactory, square

pytestmark = pytest.mark.django_db


def test_it_finds_the_park_that_contains_the_point():
    ordesa = ParkFactory(slug="ordesa", boundary=square(42.65, -0.05, 0.1))
    ParkFactory(slug="aiguestortes", boundary=square(42.58, 0.95, 0.1))

    assert park_for_point(latitude=42.6415, longitude=-0.0532) == ordesa


def test_a_point_outside_every_park_has_no_park():
    ParkFactory(slug="ordesa", boundary=square(42.65, -0.05, 0.1))

    assert park_for_point(latitude=40.4168, longitude=-3.7038) is None


def test_geojson_order_is_longitude_then_latitude():
    # A park around (lat 10, lon 20) must not contain (lat 20, lon 10).
    ParkFactory(slug="p", boundary=square(10, 20, 0.5))

    assert park_for_point(latitude=10, longitude=20) is not None
    assert park_for_point(latitude=20, longitude=10) is None


def test_it_handles_multipolygons():
    west, east = square(42.0, 0.0, 0.1), square(42.0, 1.0, 0.1)
    park = ParkFactory(
        slug="two-parts",
        boundary={
            "type": "MultiPolygon",
            "coordinates": [west["coordinates"], east["coordinates"]],
        },
    )

    assert park_for_point(latitude=42.0, longitude=1.0) == park
    assert park_for_point(latitude=42.0, longitude=0.5) is None


@pytest.mark.parametrize(
    "boundary",
    [
        {"type": "Point", "coordinates": [0, 0]},
        {
            "type": "Polygon",
            "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
        },  # crosses itself
        {
            "type": "Polygon",
            "coordinates": [[[0, 100], [1, 100], [1, 101], [0, 100]]],
        },  # latitude 100
        {"type": "Polygon", "coordinates": "nonsense"},
    ],
)
def test_a_bad_boundary_is_refused_with_a_reason(boundary):
    with pytest.raises(ParkWatchError) as excinfo:
        park_boundary_check(boundary)

    assert excinfo.value.field == "boundary"
