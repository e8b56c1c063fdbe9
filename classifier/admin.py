from django.contrib import admin, messages

from classifier.models import ClassifierLabel, ClassifierVersion, Prediction
from classifier.services.registry import version_activate
from observations.errors import ParkWatchError


class ClassifierLabelInline(admin.TabularInline):
    model = ClassifierLabel
    extra = 0
    fields = ("index", "name", "taxon")
    readonly_fields = ("index", "name")
    autocomplete_fields = ("taxon",)
    can_delete = False


@admin.register(ClassifierVersion)
class ClassifierVersionAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "campaign",
        "backend",
        "architecture",
        "input_size",
        "tta",
        "state",
        "is_demo",
        "created_at",
    )
    list_filter = ("state", "backend", "campaign", "is_demo")
    search_fields = ("name", "architecture", "source", "weights_sha256")
    readonly_fields = (
        "weights",
        "weights_sha256",
        "preprocessing",
        "input_size",
        "backend",
        "state",
        "state_reason",
        "activated_at",
        "created_at",
        "metrics",
        "model_card",
    )
    inlines = [ClassifierLabelInline]
    actions = ["activate"]

    @admin.action(
        description="Activate the selected version for its campaign (workers follow at once)"
    )
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            version = version_activate(
                version=queryset.get(),
                reason=f"Activated in the admin by {request.user.get_username()}.",
            )
        except ParkWatchError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return
        self.message_user(
            request, f"{version.label} is now active for {version.campaign}.", messages.SUCCESS
        )


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = (
        "observation",
        "photo",
        "version",
        "rank",
        "label",
        "probability",
        "tta",
        "created_at",
    )
    list_filter = ("version", "rank")
    search_fields = ("observation__uuid", "label")
    list_select_related = ("observation", "photo", "version")
    raw_id_fields = ("observation", "photo", "taxon")
