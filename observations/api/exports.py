"""Exports of confirmed records for admins: CSV, GeoJSON and a Darwin Core Archive, streamed.

`GET /api/v1/exports/<csv|geojson|dwca>/?campaign=&park=&taxon=&since=&until=&invasive_only=
&positions=` answers a file download that is written while it is sent (memory stays flat
however many records there are). Bad filters get a 400 in the API's error format before any
byte of the file leaves.
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.views import APIView

from observations.api.permissions import IsAdmin
from observations.api.serializers import ErrorSerializer
from observations.api.views import API_AUTHENTICATION, API_RENDERERS
from observations.exports import FORMATS, export_filters

FILTERS = [
    OpenApiParameter("campaign", OpenApiTypes.STR, description="Campaign slug."),
    OpenApiParameter("park", OpenApiTypes.STR, description="Park slug."),
    OpenApiParameter("taxon", OpenApiTypes.STR, description="Taxon id or scientific name."),
    OpenApiParameter(
        "since", OpenApiTypes.DATE, description="Observed on or after this day (TIME_ZONE)."
    ),
    OpenApiParameter(
        "until", OpenApiTypes.DATE, description="Observed on or before this day (TIME_ZONE)."
    ),
    OpenApiParameter(
        "invasive_only", OpenApiTypes.BOOL, description="Only taxa marked invasive (`1`)."
    ),
    OpenApiParameter(
        "positions",
        OpenApiTypes.STR,
        enum=["public", "exact"],
        default="public",
        description="`public`: sensitive taxa generalised to a 0.1 degree cell, as anonymous "
        "visitors see them (for files to share); `exact`: the stored positions.",
    ),
    OpenApiParameter(
        "gbif_only",
        OpenApiTypes.BOOL,
        description="Only records under CC0, CC BY or CC BY-NC (always so in a Darwin Core "
        "Archive).",
    ),
]
ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="A bad filter; `field` names it."),
    401: OpenApiResponse(ErrorSerializer, description="Not signed in."),
    403: OpenApiResponse(ErrorSerializer, description="Not an admin."),
}


class PointSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="Always `Point`.")
    coordinates = serializers.ListField(
        child=serializers.FloatField(),
        min_length=2,
        max_length=2,
        help_text="[longitude, latitude]",
    )


class FeatureSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="Always `Feature`.")
    id = serializers.UUIDField(help_text="The sighting's UUID.")
    geometry = PointSerializer()
    properties = serializers.DictField(help_text="The CSV's columns but the position and UUID.")


@extend_schema_serializer(component_name="FeatureCollection")
class FeatureCollectionSerializer(serializers.Serializer):
    """RFC 7946: a JSON document, so the schema describes it rather than calling it binary."""

    type = serializers.CharField(help_text="Always `FeatureCollection`.")
    features = FeatureSerializer(many=True)


class ExportApi(APIView):
    """A file of confirmed records in one format (`export_format`), for admins only."""

    authentication_classes = API_AUTHENTICATION
    renderer_classes = API_RENDERERS
    permission_classes = [IsAdmin]
    export_format = ""

    def perform_content_negotiation(self, request, force=False):
        # The URL fixes the file's type; errors are JSON whatever the Accept header asks for.
        return super().perform_content_negotiation(request, force=True)

    def get(self, request):
        export = FORMATS[self.export_format]
        filters = export_filters(request.query_params)
        response = StreamingHttpResponse(export.chunks(filters), content_type=export.content_type)
        filename = export.filename(timezone.localdate())
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"  # let a proxy pass chunks on as they come
        return response


def _schema(name: str, summary: str, description: str):
    export = FORMATS[name]
    body = FeatureCollectionSerializer if name == "geojson" else OpenApiTypes.BINARY
    return extend_schema(
        operation_id=f"exports_{name}",
        summary=summary,
        description=description,
        parameters=FILTERS,
        responses={
            (200, export.content_type.split(";")[0]): OpenApiResponse(
                body,
                description=f"The file, as an attachment: parkwatch-{name}-<date>.{export.extension}",
            ),
            **ERRORS,
        },
    )


class CsvExportApi(ExportApi):
    export_format = "csv"

    @_schema(
        "csv",
        "Confirmed records as CSV",
        "One row per confirmed sighting; the columns are documented in README.md.",
    )
    def get(self, request):
        return super().get(request)


class GeoJsonExportApi(ExportApi):
    export_format = "geojson"

    @_schema(
        "geojson",
        "Confirmed records as GeoJSON",
        "An RFC 7946 FeatureCollection of points ([longitude, latitude], WGS 84).",
    )
    def get(self, request):
        return super().get(request)


class DwcaExportApi(ExportApi):
    export_format = "dwca"

    @_schema(
        "dwca",
        "Confirmed records as a Darwin Core Archive",
        "A zip for GBIF (meta.xml, eml.xml, occurrence.txt, multimedia.txt); only records "
        "under CC0, CC BY or CC BY-NC.",
    )
    def get(self, request):
        return super().get(request)


urlpatterns = [
    path("csv/", CsvExportApi.as_view(), name="api-export-csv"),
    path("geojson/", GeoJsonExportApi.as_view(), name="api-export-geojson"),
    path("dwca/", DwcaExportApi.as_view(), name="api-export-dwca"),
]
