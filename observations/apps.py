from django.apps import AppConfig


class ObservationsConfig(AppConfig):
    name = "observations"
    verbose_name = "Sightings"
    default_auto_field = "django.db.models.BigAutoField"
