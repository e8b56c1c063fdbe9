"""Confirmed records as a Darwin Core Archive for GBIF, streamed as a zip in chunks of bytes.

The zip holds meta.xml (which column is which term), eml.xml (the dataset's metadata, from the
DWCA_* settings), occurrence.txt (the Occurrence core, one row per sighting, its id column the
occurrenceID) and multimedia.txt (GBIF's Multimedia extension, one row per public photo, linked
by that id). The data files are tab-separated UTF-8 without quoting, as GBIF's own downloads;
tabs and line breaks inside values become spaces.

The zip is written to a non-seekable sink, so `zipfile` puts each entry's sizes and CRC in a
data descriptor after its data and nothing is ever rewritten: every chunk can leave at once.
occurrence.txt and multimedia.txt are two passes over the same records (the same filters, the
same moment): the sightings, then their photos, each read `chunk_size` rows at a time. Only CC0, CC BY and CC BY-NC records
go in: the licences GBIF accepts.
"""

from __future__ import annotations

import dataclasses
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from xml.etree import ElementTree as ET

from django.conf import settings
from django.utils import timezone

from observations.exports.records import (
    VERIFICATION_STATUS,
    ExportFilters,
    ExportMedia,
    ExportRecord,
    confirmed_sightings,
    export_media,
    export_records,
    licence_url,
)

CONTENT_TYPE = "application/zip"
EXTENSION = "zip"
LINES_PER_CHUNK = 200

DWC = "http://rs.tdwg.org/dwc/terms/"
DC = "http://purl.org/dc/terms/"
OCCURRENCE = f"{DWC}Occurrence"
MULTIMEDIA = "http://rs.gbif.org/terms/1.0/Multimedia"
EML_NAMESPACE = "eml://ecoinformatics.org/eml-2.1.1"
EML_SCHEMA = "http://rs.gbif.org/schema/eml-gbif-profile/1.1/eml.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# An upper bound of one sighting's bytes in either data file: past ZIP64_LIMIT, entries are
# written as ZIP64 from the start (a streamed entry cannot become one later).
_ROW_BYTES_BOUND = 8 * 1024
_LICENCE_TITLES = {
    "CC0-1.0": "Public Domain (CC0 1.0)",
    "CC-BY-4.0": "Creative Commons Attribution (CC-BY) 4.0 License",
    "CC-BY-NC-4.0": "Creative Commons Attribution Non Commercial (CC-BY-NC) 4.0 License",
}


def _number(value: float | int | None) -> str:
    return "" if value is None else str(value)


Column = tuple[str, Callable[[ExportRecord], str]]

# occurrence.txt: column 0 is both the core id and the occurrenceID.
OCCURRENCE_COLUMNS: tuple[Column, ...] = (
    (f"{DWC}occurrenceID", lambda r: r.occurrence_id),
    (f"{DWC}basisOfRecord", lambda r: "HumanObservation"),
    (f"{DWC}occurrenceStatus", lambda r: "present"),
    (f"{DWC}eventDate", lambda r: r.event_date),
    (f"{DWC}decimalLatitude", lambda r: _number(r.latitude)),
    (f"{DWC}decimalLongitude", lambda r: _number(r.longitude)),
    (f"{DWC}geodeticDatum", lambda r: "EPSG:4326"),
    (f"{DWC}coordinateUncertaintyInMeters", lambda r: _number(r.uncertainty_m)),
    (f"{DWC}informationWithheld", lambda r: r.information_withheld),
    (f"{DWC}dataGeneralizations", lambda r: r.data_generalizations),
    (f"{DWC}countryCode", lambda r: r.country_code),
    (f"{DWC}locality", lambda r: r.park_name),
    (f"{DWC}scientificName", lambda r: r.full_scientific_name),
    (f"{DWC}scientificNameAuthorship", lambda r: r.authorship),
    (f"{DWC}taxonRank", lambda r: r.taxon_rank),
    (f"{DWC}kingdom", lambda r: r.kingdom),
    (f"{DWC}family", lambda r: r.family),
    (f"{DWC}vernacularName", lambda r: r.common_name),
    (f"{DWC}recordedBy", lambda r: r.recorded_by),
    (f"{DWC}identifiedBy", lambda r: r.identified_by),
    (f"{DWC}dateIdentified", lambda r: r.date_identified),
    (f"{DWC}identificationVerificationStatus", lambda r: VERIFICATION_STATUS),
    (f"{DWC}identificationRemarks", lambda r: r.identification_remarks),
    (f"{DWC}associatedMedia", lambda r: " | ".join(photo.url for photo in r.photos)),
    (f"{DC}license", lambda r: r.licence_url),
    (f"{DC}rightsHolder", lambda r: r.rights_holder),
    (f"{DC}references", lambda r: r.url),
    (f"{DC}modified", lambda r: r.modified),
)
# multimedia.txt: column 0 is the core id (the occurrenceID of the photo's sighting).
MULTIMEDIA_TERMS = (
    f"{DC}type",
    f"{DC}format",
    f"{DC}identifier",
    f"{DC}references",
    f"{DC}title",
    f"{DC}created",
    f"{DC}creator",
    f"{DC}publisher",
    f"{DC}license",
    f"{DC}rightsHolder",
)


def _short(term: str) -> str:
    return term.rsplit("/", 1)[-1]


def _clean(value: str) -> str:
    """A value fit for a tab-separated, unquoted file."""
    return " ".join(value.replace("\t", " ").splitlines()) if value else ""


def _line(values: Iterable[str]) -> str:
    return "\t".join(_clean(value) for value in values) + "\n"


def occurrence_lines(records: Iterable[ExportRecord]) -> Iterator[str]:
    yield _line(_short(term) for term, _ in OCCURRENCE_COLUMNS)
    for record in records:
        yield _line(value(record) for _, value in OCCURRENCE_COLUMNS)


def multimedia_lines(media: Iterable[ExportMedia]) -> Iterator[str]:
    yield _line(["coreid", *(_short(term) for term in MULTIMEDIA_TERMS)])
    publisher = settings.DWCA_PUBLISHER
    for photo in media:
        yield _line(
            [
                photo.occurrence_id,
                "StillImage",
                "image/jpeg",
                photo.url,
                photo.sighting_url,
                f"Photo {photo.position + 1} of sighting {photo.sighting_uuid}",
                photo.created,
                photo.creator,
                publisher,
                photo.licence_url,
                photo.rights_holder,
            ]
        )


def meta_xml() -> bytes:
    """The archive descriptor: the core, the extension, and each column's term."""
    archive = ET.Element("archive", xmlns="http://rs.tdwg.org/dwc/text/", metadata="eml.xml")
    core = _data_file(archive, "core", OCCURRENCE, "occurrence.txt")
    ET.SubElement(core, "id", index="0")
    for index, (term, _) in enumerate(OCCURRENCE_COLUMNS):
        ET.SubElement(core, "field", index=str(index), term=term)
    extension = _data_file(archive, "extension", MULTIMEDIA, "multimedia.txt")
    ET.SubElement(extension, "coreid", index="0")
    for index, term in enumerate(MULTIMEDIA_TERMS, start=1):
        ET.SubElement(extension, "field", index=str(index), term=term)
    ET.indent(archive)
    return ET.tostring(archive, encoding="utf-8", xml_declaration=True) + b"\n"


def _data_file(archive: ET.Element, tag: str, row_type: str, location: str) -> ET.Element:
    element = ET.SubElement(
        archive,
        tag,
        encoding="UTF-8",
        fieldsTerminatedBy="\\t",
        linesTerminatedBy="\\n",
        fieldsEnclosedBy="",
        ignoreHeaderLines="1",
        rowType=row_type,
    )
    ET.SubElement(ET.SubElement(element, "files"), "location").text = location
    return element


def eml_xml(*, published: datetime | None = None) -> bytes:
    """The dataset's metadata (GBIF's EML profile): what GBIF requires, from DWCA_* settings."""
    published = published or timezone.now()
    ET.register_namespace("eml", EML_NAMESPACE)
    ET.register_namespace("xsi", XSI)
    package_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{settings.SITE_URL}/api/v1/exports/dwca/"))
    root = ET.Element(
        f"{{{EML_NAMESPACE}}}eml",
        {
            f"{{{XSI}}}schemaLocation": f"{EML_NAMESPACE} {EML_SCHEMA}",
            "packageId": package_id,
            "system": "http://gbif.org",
            "scope": "system",
            XML_LANG: "eng",
        },
    )
    dataset = ET.SubElement(root, "dataset")
    ET.SubElement(dataset, "alternateIdentifier").text = package_id
    ET.SubElement(dataset, "title", {XML_LANG: "eng"}).text = settings.DWCA_TITLE
    _party(dataset, "creator", settings.DWCA_CREATOR)
    _party(dataset, "metadataProvider", settings.DWCA_METADATA_PROVIDER)
    publisher = _party(dataset, "associatedParty", settings.DWCA_PUBLISHER)
    ET.SubElement(publisher, "role").text = "publisher"
    ET.SubElement(dataset, "pubDate").text = published.date().isoformat()
    ET.SubElement(dataset, "language").text = "eng"
    ET.SubElement(ET.SubElement(dataset, "abstract"), "para").text = settings.DWCA_DESCRIPTION
    _intellectual_rights(dataset, settings.DWCA_LICENCE)
    online = ET.SubElement(ET.SubElement(dataset, "distribution", scope="document"), "online")
    ET.SubElement(online, "url", function="information").text = settings.SITE_URL
    contact = ET.SubElement(dataset, "contact")
    name = ET.SubElement(contact, "individualName")
    ET.SubElement(name, "surName").text = settings.DWCA_CONTACT_NAME
    ET.SubElement(contact, "electronicMailAddress").text = settings.DWCA_CONTACT_EMAIL
    gbif = ET.SubElement(
        ET.SubElement(ET.SubElement(root, "additionalMetadata"), "metadata"), "gbif"
    )
    ET.SubElement(gbif, "dateStamp").text = published.isoformat(timespec="seconds")
    ET.SubElement(gbif, "hierarchyLevel").text = "dataset"
    ET.SubElement(gbif, "citation").text = settings.DWCA_CITATION
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _party(parent: ET.Element, tag: str, organisation: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    ET.SubElement(element, "organizationName").text = organisation
    return element


def _intellectual_rights(dataset: ET.Element, code: str) -> None:
    """GBIF reads the dataset licence from the ulink, as the IPT writes it."""
    para = ET.SubElement(ET.SubElement(dataset, "intellectualRights"), "para")
    title = _LICENCE_TITLES.get(code, code)
    if code == "CC0-1.0":
        para.text = (
            "To the extent possible under law, the publisher has waived all rights to these data "
            "and has dedicated them to the "
        )
    else:
        para.text = "This work is licensed under a "
    link = ET.SubElement(para, "ulink", url=licence_url(code))
    ET.SubElement(link, "citetitle").text = title
    link.tail = "."


class _Sink:
    """A write-only, non-seekable file: what was written since the last `take()` leaves."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def dwca_chunks(filters: ExportFilters, *, chunk_size: int | None = None) -> Iterator[bytes]:
    """The archive as a zip, a few hundred lines per chunk; never the whole file in memory."""
    return (chunk for chunk in _zip_chunks(filters, chunk_size) if chunk)


def _zip_chunks(filters: ExportFilters, chunk_size: int | None) -> Iterator[bytes]:
    filters = dataclasses.replace(filters, gbif_only=True).as_of_now()
    large = confirmed_sightings(filters).count() * _ROW_BYTES_BOUND > zipfile.ZIP64_LIMIT
    stamp = timezone.localtime().timetuple()[:6]
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in (("meta.xml", meta_xml()), ("eml.xml", eml_xml())):
            archive.writestr(_entry(name, stamp), data)
            yield sink.take()
        for name, lines in (
            ("occurrence.txt", occurrence_lines(export_records(filters, chunk_size=chunk_size))),
            ("multimedia.txt", multimedia_lines(export_media(filters, chunk_size=chunk_size))),
        ):
            with archive.open(_entry(name, stamp), mode="w", force_zip64=large) as entry:
                batch: list[str] = []
                for line in lines:
                    batch.append(line)
                    if len(batch) >= LINES_PER_CHUNK:
                        entry.write("".join(batch).encode("utf-8"))
                        batch.clear()
                        yield sink.take()
                entry.write("".join(batch).encode("utf-8"))
            yield sink.take()
    yield sink.take()


def _entry(name: str, stamp: tuple) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info
