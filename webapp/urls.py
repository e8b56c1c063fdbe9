import re

from django.conf import settings
from django.contrib import admin
from django.core.files.storage import storages
from django.http import Http404, HttpResponseRedirect
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from webapp import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/v1/", include("observations.api.urls")),
    path("api/v1/", include("classifier.api")),
    path("review/", include("observations.review_urls")),
    path("dashboard/", include("classifier.dashboard.urls")),
    path("", include("observations.urls")),
]


def media(request, path):
    """Public derivatives at stable addresses, the links exports carry.

    From the media folder (read from settings at request time: tests move MEDIA_ROOT); from a
    bucket, a redirect to a fresh signed URL, since a signature expires and an export does not.
    """
    storage = storages["default"]
    if not getattr(storage, "querystring_auth", False):
        return serve(request, path, document_root=settings.MEDIA_ROOT)
    if not path.startswith(("photos/", "thumbnails/")):
        raise Http404("No such photo.")
    response = HttpResponseRedirect(storage.url(path))
    response["Cache-Control"] = "private, max-age=60"  # well inside the signature's life
    return response


if settings.SERVE_MEDIA:
    # Only the public storage (derivatives without EXIF) is routed; originals live elsewhere.
    prefix = re.escape(settings.MEDIA_URL.lstrip("/"))
    urlpatterns += [re_path(rf"^{prefix}(?P<path>.*)$", media, name="media")]

# Anything under /api/ that matches no route answers the API's JSON error body; pages keep
# the HTML 404 and 500 templates.
handler404 = "observations.views.page_not_found"
handler500 = "observations.views.server_error"
