"""The curators' pages, under /review/ (webapp/urls.py includes them)."""

from django.urls import path

from observations import review_views

urlpatterns = [
    path("", review_views.queue, name="review-queue"),
    path("next/", review_views.take_next, name="review-next"),
    path("bulk/", review_views.bulk_decide, name="review-bulk"),
    path("control/", review_views.control, name="control-cases"),
    path("control/<uuid:uuid>/", review_views.control_step, name="control-advance"),
    path("<uuid:uuid>/", review_views.sighting, name="review-sighting"),
    path("<uuid:uuid>/decide/", review_views.decide, name="review-decide"),
    path("<uuid:uuid>/release/", review_views.release, name="review-release"),
]
