from django.urls import path

from observations.api import views

urlpatterns = [
    path("observations/", views.ObservationCollectionApi.as_view(), name="api-observations"),
    path(
        "observations/<str:uuid>/",
        views.ObservationDetailApi.as_view(),
        name="api-observation-detail",
    ),
]
