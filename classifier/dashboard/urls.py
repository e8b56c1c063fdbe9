"""The admins' dashboard, under /dashboard/ (webapp/urls.py includes it)."""

from django.urls import path

from classifier.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("map.json", views.map_data, name="map"),
    path("classifiers/", views.classifiers, name="classifiers"),
    path("classifiers/rollback/", views.rollback, name="rollback"),
    path("classifiers/<int:pk>/promote/", views.promote, name="promote"),
    path("classifiers/<int:pk>/plots/<slug:kind>.png", views.plot, name="plot"),
    path("training/", views.training, name="training"),
    path("training/start/", views.training_start, name="training-start"),
    path("training/snapshots/", views.snapshot_freeze, name="snapshot-freeze"),
    path("training/<int:pk>/cancel/", views.training_cancel, name="training-cancel"),
    path("training/<int:pk>/progress.json", views.training_progress, name="training-progress"),
]
