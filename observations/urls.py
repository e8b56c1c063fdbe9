from django.contrib.auth import views as auth_views
from django.urls import path

from observations import views

urlpatterns = [
    path("", views.home, name="home"),
    path("sightings/", views.my_sightings, name="my-sightings"),
    path("sightings/<uuid:uuid>/", views.sighting_detail, name="sighting-detail"),
    path("sightings/<uuid:uuid>/status.json", views.sighting_status, name="sighting-status"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
