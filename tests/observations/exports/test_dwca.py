"""The Darwin Core Archive, read back as GBIF's tools read it (python-dwca-reader).

Every expected value is taken from the database (or written out literally), never from the
export's own row model, so a wrong mapping fails here.
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

import pytest
from django.conf import settings
from dwca.darwincore.utils import qualname as qn
from dwca.read import DwCAReader

from classifier.models import Prediction
from classifier.services.inference import classify_pending
from observations.geoprivacy import CELL_UNCERTAINTY_M
from observations.models import Observation, Taxon
from observations.roles import CURATOR_GROUP
from observations.selectors import confirmed_by
from tests.classifier.support import register_tiny_classifier
from tests.conftest import ORDESA
from tests.factories import UserFactory
from tests.observations.exports.conftest import body

pytestmark = pytest.mark.django_db

URL = "/api/v1/exports/dwca/"
DC = "http://purl.org/dc/terms/"
MULTIMEDIA = "http://rs.gbif.org/terms/1.0/Multimedia"
CC_BY = "https://creativecommons.org/licenses/by/4.0/legalcode"
CC_BY_NC = "https://creativecommons.org/licenses/by-nc/4.0/legalcode"
# Required, strongly recommended and asked-for terms (DESIGN.md, GBIF's requirements).
REQUIRED_TERMS = [
    qn(term)
    for term in (
        "occurrenceID",
        "basisOfRecord",
        "eventDate",
        "decimalLatitude",
        "decimalLongitude",
        "geodeticDatum",
        "coordinateUncertaintyInMeters",
        "countryCode",
        "locality",
        "scientificName",
        "taxonRank",
        "kingdom",
        "family",
        "recordedBy",
        "identifiedBy",
        "dateIdentified",
        "identificationVerificationStatus",
        "identificationRemarks",
        "occurrenceStatus",
        "informationWithheld",
        "dataGeneralizations",
    )
] + [f"{DC}{term}" for term in ("license", "rightsHolder", "references", "modified")]


def archive(client, tmp_path, query: str = "") -> DwCAReader:
    response = client.get(f"{URL}{query}")
    assert response.status_code == 200, response.content
    path = tmp_path / f"archive-{len(list(tmp_path.iterdir()))}.zip"
    path.write_bytes(body(response))
    return DwCAReader(str(path))


def core_rows(dwca: DwCAReader) -> dict[str, object]:
    return {row.id: row for row in dwca}


def stamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, f"{value} has no offset"
    return parsed


@pytest.fixture
def lead(db):
    return UserFactory(username="lucia", first_name="Lucía", last_name="Pérez", role=CURATOR_GROUP)


def test_every_row_and_term_matches_the_database(
    admin_api, tmp_path, campaign, taxa, submit, confirm, lead, visitor, park
):
    Taxon.objects.filter(pk=taxa[0].pk).update(authorship="Franch.")
    # Exact positions here whatever the tiny model suggests (an AI top-1 that is sensitive
    # would generalise them; that rule has its own test below).
    Taxon.objects.update(is_sensitive=False)
    register_tiny_classifier(campaign, tmp_path)
    credited = submit(observer=visitor, observer_credit="María López", photos=2)
    anonymous = submit(observer=visitor, observer_email="secret@example.org")
    classify_pending(hint_ids=[credited.pk, anonymous.pk])
    credited = confirm(credited, taxa[0], by=lead)
    anonymous = confirm(anonymous, taxa[1])
    Observation.objects.filter(pk=anonymous.pk).update(licence=Observation.Licence.CC_BY_NC)
    rejected = submit()
    Observation.objects.filter(pk=rejected.pk).update(status=Observation.Status.REJECTED)
    submit()  # still waiting for review

    with archive(admin_api, tmp_path) as dwca:
        rows = core_rows(dwca)
        assert dwca.descriptor.core.type == qn("Occurrence")
        assert set(REQUIRED_TERMS) <= dwca.descriptor.core.terms

    assert set(rows) == {f"urn:uuid:{credited.uuid}", f"urn:uuid:{anonymous.uuid}"}
    for observation in (credited, anonymous):
        observation = Observation.objects.select_related("park", "final_taxon").get(
            pk=observation.pk
        )
        data = rows[f"urn:uuid:{observation.uuid}"].data
        taxon = observation.final_taxon
        top = Prediction.objects.select_related("taxon", "version").get(
            observation=observation, photo=None, rank=1
        )
        assert data[qn("occurrenceID")] == f"urn:uuid:{observation.uuid}"
        assert data[qn("basisOfRecord")] == "HumanObservation"
        assert data[qn("occurrenceStatus")] == "present"
        # 10:30 in Madrid in June, with the park's offset.
        assert data[qn("eventDate")] == "2026-06-01T10:30:00+02:00"
        assert stamp(data[qn("eventDate")]) == observation.observed_at
        assert float(data[qn("decimalLatitude")]) == observation.latitude == ORDESA[0]
        assert float(data[qn("decimalLongitude")]) == observation.longitude == ORDESA[1]
        assert data[qn("geodeticDatum")] == "EPSG:4326"
        assert float(data[qn("coordinateUncertaintyInMeters")]) == observation.accuracy_m == 12
        assert data[qn("informationWithheld")] == ""
        assert data[qn("dataGeneralizations")] == ""
        assert data[qn("countryCode")] == "ES"
        assert data[qn("locality")] == park.name == "Ordesa y Monte Perdido"
        assert data[qn("scientificName")] == f"{taxon.scientific_name} {taxon.authorship}".strip()
        assert data[qn("taxonRank")] == "species"
        assert data[qn("kingdom")] == "Plantae"
        assert data[qn("family")] == taxon.family
        assert data[qn("identifiedBy")] in (
            confirmed_by(observation).get_full_name(),
            confirmed_by(observation).username,
        )
        assert stamp(data[qn("dateIdentified")]) == observation.decided_at.replace(microsecond=0)
        assert stamp(data[f"{DC}modified"]) == observation.updated_at.replace(microsecond=0)
        assert data[qn("identificationVerificationStatus")] == "verified by specialist"
        name = top.taxon.scientific_name if top.taxon else top.label
        assert data[qn("identificationRemarks")] == (
            f"AI suggestion: {name} (p={top.probability:.2f}) by "
            f"{top.version.name} v{top.version.pk}"
        )
        assert data[f"{DC}references"] == f"{settings.SITE_URL}/sightings/{observation.uuid}/"
        assert "secret@example.org" not in " ".join(data.values())
        assert "visitor" not in " ".join(data.values())

    credited_row = rows[f"urn:uuid:{credited.uuid}"].data
    assert credited_row[qn("scientificName")] == "Buddleja davidii Franch."
    assert credited_row[qn("identifiedBy")] == "Lucía Pérez"
    assert credited_row[qn("recordedBy")] == "María López"
    assert credited_row[f"{DC}rightsHolder"] == "María López"
    assert credited_row[f"{DC}license"] == CC_BY
    anonymous_row = rows[f"urn:uuid:{anonymous.uuid}"].data
    assert anonymous_row[qn("scientificName")] == "Reynoutria japonica"
    assert anonymous_row[qn("identifiedBy")] == "curator"
    assert anonymous_row[qn("recordedBy")] == ""  # never the username or e-mail
    assert anonymous_row[f"{DC}rightsHolder"] == settings.DWCA_RIGHTS_HOLDER
    assert anonymous_row[f"{DC}license"] == CC_BY_NC


def test_meta_xml_resolves_the_multimedia_extension_by_core_id(
    admin_api, tmp_path, confirmed, visitor
):
    two_photos = confirmed(observer=visitor, observer_credit="María López", photos=2)
    one_photo = confirmed()

    with archive(admin_api, tmp_path) as dwca:
        assert dwca.descriptor.core.file_location == "occurrence.txt"
        assert dwca.descriptor.core.id_index == 0
        assert [ext.type for ext in dwca.descriptor.extensions] == [MULTIMEDIA]
        multimedia = dwca.descriptor.extensions[0]
        assert multimedia.file_location == "multimedia.txt"
        assert multimedia.coreid_index == 0
        assert {f"{DC}{t}" for t in ("type", "format", "identifier", "license")} <= (
            multimedia.terms
        )
        media = {row.id: [(ext.core_id, ext.data) for ext in row.extensions] for row in dwca}
        assert dwca.orphaned_extension_rows() == {"multimedia.txt": {}}

    for observation in (two_photos, one_photo):
        rows = media[f"urn:uuid:{observation.uuid}"]
        photos = list(observation.photos.order_by("position"))
        assert len(rows) == len(photos)
        for (core_id, data), photo in zip(rows, photos, strict=True):
            assert core_id == f"urn:uuid:{observation.uuid}"
            # The public derivative (re-encoded, no EXIF), never the private original.
            assert data[f"{DC}identifier"] == f"{settings.SITE_URL}{photo.image.url}"
            assert photo.image.name.startswith("photos/")
            assert data[f"{DC}type"] == "StillImage"
            assert data[f"{DC}format"] == "image/jpeg"
            assert data[f"{DC}license"] == CC_BY
            assert data[f"{DC}references"] == f"{settings.SITE_URL}/sightings/{observation.uuid}/"
    assert media[f"urn:uuid:{two_photos.uuid}"][0][1][f"{DC}creator"] == "María López"
    assert media[f"urn:uuid:{two_photos.uuid}"][0][1][f"{DC}rightsHolder"] == "María López"
    assert media[f"urn:uuid:{one_photo.uuid}"][0][1][f"{DC}creator"] == ""


def test_eml_holds_the_dataset_metadata_from_settings(admin_api, tmp_path, confirmed, settings):
    settings.DWCA_TITLE = "Invasive plants of Ordesa"
    settings.DWCA_DESCRIPTION = "Sightings confirmed by the park's botanists."
    settings.DWCA_PUBLISHER = "Parque Nacional de Ordesa"
    settings.DWCA_CREATOR = "ParkWatch team"
    settings.DWCA_METADATA_PROVIDER = "Data office"
    settings.DWCA_CONTACT_NAME = "Ana García"
    settings.DWCA_CONTACT_EMAIL = "datos@ordesa.example"
    settings.DWCA_CITATION = "Parque Nacional de Ordesa (2026). Invasive plants of Ordesa."
    settings.DWCA_LICENCE = "CC-BY-4.0"
    confirmed()

    with archive(admin_api, tmp_path) as dwca:
        eml = dwca.metadata
    assert eml.tag == "{eml://ecoinformatics.org/eml-2.1.1}eml"
    dataset = eml.find("dataset")
    assert dataset.findtext("title") == "Invasive plants of Ordesa"
    assert dataset.findtext("abstract/para") == "Sightings confirmed by the park's botanists."
    assert dataset.findtext("creator/organizationName") == "ParkWatch team"
    assert dataset.findtext("metadataProvider/organizationName") == "Data office"
    publisher = dataset.find("associatedParty")
    assert publisher.findtext("organizationName") == "Parque Nacional de Ordesa"
    assert publisher.findtext("role") == "publisher"
    assert dataset.findtext("contact/individualName/surName") == "Ana García"
    assert dataset.findtext("contact/electronicMailAddress") == "datos@ordesa.example"
    assert dataset.find("intellectualRights/para/ulink").get("url") == CC_BY
    assert eml.findtext("additionalMetadata/metadata/gbif/citation") == (
        "Parque Nacional de Ordesa (2026). Invasive plants of Ordesa."
    )


def test_a_sensitive_position_is_generalised_with_the_information_withheld(
    admin_api, tmp_path, confirmed, taxa
):
    orchid = confirmed(taxon=taxa[3], position=(42.64151, -0.05320))

    with archive(admin_api, tmp_path) as dwca:
        public = core_rows(dwca)[f"urn:uuid:{orchid.uuid}"].data
    # The centre of the 0.1 degree cell, and an uncertainty that covers the cell.
    assert float(public[qn("decimalLatitude")]) == 42.65
    assert float(public[qn("decimalLongitude")]) == -0.05
    assert float(public[qn("coordinateUncertaintyInMeters")]) == CELL_UNCERTAINTY_M
    assert public[qn("informationWithheld")] == (
        "Exact coordinates withheld: sensitive taxon; available on request."
    )
    assert public[qn("dataGeneralizations")] == (
        "Coordinates generalised to a 0.1 degree grid cell."
    )
    assert "42.64151" not in str(public)

    with archive(admin_api, tmp_path, "?positions=exact") as dwca:
        exact = core_rows(dwca)[f"urn:uuid:{orchid.uuid}"].data
    assert float(exact[qn("decimalLatitude")]) == 42.64151
    assert float(exact[qn("decimalLongitude")]) == -0.05320
    assert exact[qn("informationWithheld")] == ""


def test_only_licences_gbif_accepts_go_into_the_archive(admin_api, tmp_path, confirmed):
    open_record = confirmed(licence=Observation.Licence.CC0)
    closed = confirmed()
    # A record under a licence GBIF refuses (say, imported with all rights reserved).
    Observation.objects.filter(pk=closed.pk).update(licence="all-rights-reserved")

    with archive(admin_api, tmp_path) as dwca:
        rows = core_rows(dwca)
        assert dwca.orphaned_extension_rows() == {"multimedia.txt": {}}
    assert set(rows) == {f"urn:uuid:{open_record.uuid}"}
    assert rows[f"urn:uuid:{open_record.uuid}"].data[f"{DC}license"] == (
        "https://creativecommons.org/publicdomain/zero/1.0/legalcode"
    )
    csv_text = b"".join(admin_api.get("/api/v1/exports/csv/").streaming_content).decode()
    assert str(closed.uuid) in csv_text  # the CSV for park management keeps it


def test_the_zip_streams_in_data_descriptor_mode(admin_api, confirmed, settings):
    settings.EXPORT_CHUNK_SIZE = 2
    for _ in range(5):
        confirmed()

    response = admin_api.get(URL)
    chunks = list(response.streaming_content)
    assert len(chunks) > 4
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as zipped:
        assert zipped.testzip() is None
        names = zipped.namelist()
        assert sorted(names) == ["eml.xml", "meta.xml", "multimedia.txt", "occurrence.txt"]
        # Sizes and CRC after each entry's data: nothing was rewritten, nothing held back.
        assert all(info.flag_bits & 0x08 for info in zipped.infolist())
        occurrence = zipped.read("occurrence.txt").decode()
    assert len(occurrence.splitlines()) == 1 + 5
    assert response["Content-Type"] == "application/zip"
