from django.contrib import admin
from django.utils.html import format_html

from observations.models import Campaign, Observation, Park, Photo, Taxon


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


@admin.register(Park)
class ParkAdmin(admin.ModelAdmin):
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
    filter_horizontal = ("taxa", "parks", "curators")
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
