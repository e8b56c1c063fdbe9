from django.contrib import admin
from django.utils.html import format_html

from observations.models import (
    Alert,
    AlertAttempt,
    Campaign,
    ControlEvent,
    Observation,
    Park,
    ParkContact,
    Photo,
    Review,
    Taxon,
)


@admin.register(Taxon)
class TaxonAdmin(admin.ModelAdmin):
    list_display = (
        "scientific_name",
        "common_name",
        "rank",
        "family",
        "is_invasive",
        "is_sensitive",
    )
    list_filter = ("is_invasive", "is_sensitive", "rank", "kingdom", "family")
    search_fields = ("scientific_name", "common_name", "family", "gbif_key")


class ParkContactInline(admin.TabularInline):
    model = ParkContact
    extra = 1
    fields = ("name", "email", "webhook_url", "webhook_secret", "delivery", "is_active")


@admin.register(Park)
class ParkAdmin(admin.ModelAdmin):
    inlines = [ParkContactInline]
    list_display = ("name", "slug", "country_code", "timezone", "boundary_is_approximate")
    list_filter = ("country_code", "boundary_is_approximate")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}

    def save_model(self, request, obj, form, change):
        from observations.services.parks import park_boundary_check

        park_boundary_check(obj.boundary)
        super().save_model(request, obj, form, change)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_default", "is_active", "reviews_required")
    list_filter = ("is_active", "is_default")
    search_fields = ("name", "slug")
    filter_horizontal = ("taxa", "parks", "curators", "lead_curators")
    prepopulated_fields = {"slug": ("name",)}


class PhotoInline(admin.TabularInline):
    model = Photo
    extra = 0
    can_delete = False
    fields = ("preview", "position", "format", "width", "height", "size_bytes", "sha256")
    readonly_fields = fields

    @admin.display(description="photo")
    def preview(self, photo):
        return format_html('<img src="{}" style="max-height:80px">', photo.thumbnail.url)


@admin.register(Observation)
class ObservationAdmin(admin.ModelAdmin):
    list_display = (
        "uuid",
        "received_at",
        "status",
        "campaign",
        "park",
        "guess",
        "ai_taxon",
        "ai_score",
        "final_taxon",
        "control_status",
    )
    list_filter = (
        "status",
        "campaign",
        "park",
        "control_status",
        "position_source",
        "licence",
        ("possible_duplicate_of", admin.EmptyFieldListFilter),
        "final_taxon__is_invasive",
    )
    search_fields = (
        "uuid",
        "client_uuid",
        "notes",
        "observer__username",
        "observer_email",
        "final_taxon__scientific_name",
        "ai_taxon__scientific_name",
        "guess__scientific_name",
    )
    date_hierarchy = "observed_at"
    list_select_related = ("campaign", "park", "guess", "ai_taxon", "final_taxon")
    raw_id_fields = ("observer", "possible_duplicate_of")
    readonly_fields = ("uuid", "client_uuid", "received_at", "updated_at", "classified_at")
    inlines = [PhotoInline]


class ReadOnlyAdmin(admin.ModelAdmin):
    """An audit trail: shown, never edited or deleted here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = (
        "observation",
        "curator",
        "decision",
        "taxon",
        "reject_reason",
        "by_lead",
        "round",
        "created_at",
    )
    list_filter = ("decision", "by_lead", "reject_reason", "curator")
    search_fields = ("observation__uuid", "curator__username", "taxon__scientific_name", "comment")
    list_select_related = ("observation", "curator", "taxon")


class AlertAttemptInline(admin.TabularInline):
    model = AlertAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("attempted_at", "ok", "status_code", "error")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = (
        "observation",
        "park",
        "channel",
        "recipients",
        "is_first_record",
        "is_digest",
        "state",
        "attempts",
        "sent_at",
    )
    list_filter = ("state", "channel", "is_first_record", "is_digest", "park")
    search_fields = ("observation__uuid", "recipients")
    readonly_fields = [field.name for field in Alert._meta.fields]
    inlines = [AlertAttemptInline]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry delivery now")
    def retry_now(self, request, queryset):
        from observations.services.alerts import alerts_enqueue

        ids = list(
            queryset.exclude(state=Alert.State.SENT)
            .filter(is_digest=False)
            .values_list("pk", flat=True)
        )
        Alert.objects.filter(pk__in=ids).update(next_attempt_at=None)
        alerts_enqueue(alert_ids=ids)
        self.message_user(request, f"{len(ids)} alert(s) queued for delivery.")


@admin.register(ControlEvent)
class ControlEventAdmin(ReadOnlyAdmin):
    list_display = ("observation", "from_status", "to_status", "user", "created_at")
    list_filter = ("to_status",)
    search_fields = ("observation__uuid", "note")
