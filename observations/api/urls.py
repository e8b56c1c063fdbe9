from django.urls import include, path

from observations.api import views

urlpatterns = [
    path("observations/", views.ObservationCollectionApi.as_view(), name="api-observations"),
    path(
        "observations/<str:uuid>/",
        views.ObservationDetailApi.as_view(),
        name="api-observation-detail",
    ),
    # The curators' endpoints: review queue, claims, decisions, control follow-up.
    path("", include("observations.api.review")),
    path("exports/", include("observations.api.exports")),
]
