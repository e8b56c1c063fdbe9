"""The domain: campaigns, parks, taxa, sightings (observations) and their photos.

Models hold data and small derived properties; writes live in `observations.services`.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

from observations.storage import originals_storage


class Taxon(models.Model):
    class Rank(models.TextChoices):
        KINGDOM = "kingdom"
        PHYLUM = "phylum"
        CLASS = "class"
        ORDER = "order"
        FAMILY = "family"
        GENUS = "genus"
        SPECIES = "species"
        SUBSPECIES = "subspecies"
        VARIETY = "variety"

    scientific_name = models.CharField(max_length=200, unique=True)
    authorship = models.CharField(max_length=200, blank=True)
    rank = models.CharField(max_length=20, choices=Rank.choices, default=Rank.SPECIES)
    common_name = models.CharField(max_length=200, blank=True, help_text="In English.")
    common_names = models.JSONField(
        default=dict, blank=True, help_text='Other languages, e.g. {"es": "...", "fr": "..."}.'
    )
    kingdom = models.CharField(max_length=60, blank=True, default="Plantae")
    family = models.CharField(max_length=100, blank=True)
    gbif_key = models.PositiveBigIntegerField(null=True, blank=True, unique=True)
    is_invasive = models.BooleanField(default=False)
    is_sensitive = models.BooleanField(
        default=False, help_text="Positions are generalised to a 0.1 degree cell in public outputs."
    )
    description = models.TextField(blank=True)
    info_url = models.URLField(blank=True)

    class Meta:
        ordering = ["scientific_name"]
        verbose_name_plural = "taxa"

    def __str__(self) -> str:
        return self.scientific_name

    @property
    def display_name(self) -> str:
        if self.common_name:
            return f"{self.common_name} ({self.scientific_name})"
        return self.scientific_name


class Park(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    boundary = models.JSONField(
        help_text="GeoJSON Polygon or MultiPolygon in WGS 84 ([longitude, latitude] pairs)."
    )
    boundary_is_approximate = models.BooleanField(default=False)
    timezone = models.CharField(max_length=64, default="Europe/Madrid")
    country_code = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Campaign(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    taxa = models.ManyToManyField(Taxon, blank=True, related_name="campaigns")
    parks = models.ManyToManyField(Park, blank=True, related_name="campaigns")
    curators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="curated_campaigns"
    )
    lead_curators = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="led_campaigns",
        help_text="Their decision is final on its own, and they settle conflicts.",
    )
    confidence_threshold = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text='AI suggestions below this probability are shown as "not sure".',
    )
    renormalise_to_campaign_taxa = models.BooleanField(
        default=False, help_text="Restrict AI probabilities to this campaign's taxa."
    )
    reviews_required = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="Agreeing curator reviews needed for a verdict (a lead curator decides alone).",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_campaign",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Observation(models.Model):
    """One sighting: 1-5 photos of one organism at one place and time."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        CLASSIFIED = "classified"
        CLASSIFICATION_FAILED = "classification_failed", "classification failed"
        IN_REVIEW = "in_review", "in review"
        CONFIRMED = "confirmed"
        REJECTED = "rejected"
        UNIDENTIFIABLE = "unidentifiable"
        NEEDS_INFO = "needs_info", "needs more information"
        CONFLICT = "conflict", "curators disagree"

    class PositionSource(models.TextChoices):
        EXIF = "exif", "photo EXIF"
        DEVICE = "device", "device location"
        MAP = "map", "picked on the map"

    class Licence(models.TextChoices):
        CC0 = "CC0-1.0", "CC0 (public domain)"
        CC_BY = "CC-BY-4.0", "CC BY 4.0"
        CC_BY_NC = "CC-BY-NC-4.0", "CC BY-NC 4.0"

    class ControlStatus(models.TextChoices):
        REPORTED = "reported"
        ASSESSED = "assessed"
        TREATMENT_SCHEDULED = "treatment_scheduled", "treatment scheduled"
        TREATED = "treated"
        MONITORING = "monitoring"
        ERADICATED = "eradicated"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    client_uuid = models.UUIDField(
        null=True,
        blank=True,
        unique=True,
        help_text="Sent by the client so retries are idempotent.",
    )
    observer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="observations",
    )
    observer_email = models.EmailField(blank=True)
    observer_credit = models.CharField(
        max_length=150,
        blank=True,
        help_text="Name the observer asked to be credited as (empty: anonymous).",
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="observations")
    park = models.ForeignKey(
        Park, null=True, blank=True, on_delete=models.SET_NULL, related_name="observations"
    )
    latitude = models.FloatField(validators=[MinValueValidator(-90), MaxValueValidator(90)])
    longitude = models.FloatField(validators=[MinValueValidator(-180), MaxValueValidator(180)])
    accuracy_m = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0)])
    altitude_m = models.FloatField(null=True, blank=True)
    position_source = models.CharField(max_length=10, choices=PositionSource.choices)
    observed_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    notes = models.TextField(blank=True)
    guess = models.ForeignKey(
        Taxon, null=True, blank=True, on_delete=models.SET_NULL, related_name="guessed_in"
    )
    licence = models.CharField(max_length=20, choices=Licence.choices, default=Licence.CC_BY)

    status = models.CharField(max_length=30, choices=Status.choices, default=Status.RECEIVED)
    status_detail = models.TextField(blank=True, help_text="Why classification failed, etc.")
    possible_duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="possible_duplicates"
    )

    # Written by the classifier (the web side only reads these).
    ai_taxon = models.ForeignKey(
        Taxon, null=True, blank=True, on_delete=models.SET_NULL, related_name="ai_suggested_in"
    )
    ai_label = models.CharField(max_length=200, blank=True, help_text="Raw top-1 label.")
    ai_score = models.FloatField(null=True, blank=True)
    ai_entropy = models.FloatField(null=True, blank=True)
    classified_at = models.DateTimeField(null=True, blank=True)
    # A worker's lease on the sighting while it classifies it; an expired lease (a worker that
    # died) lets another worker claim it again.
    classification_claimed_until = models.DateTimeField(null=True, blank=True)
    classification_attempts = models.PositiveSmallIntegerField(default=0)
    # Highest probability the AI gave to an invasive taxon in its top 5: the queue's first key.
    ai_invasive_score = models.FloatField(null=True, blank=True)

    # The review claim: one curator at a time; an expired claim is free to take again.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_observations",
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_from_status = models.CharField(max_length=30, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    message_to_observer = models.TextField(
        blank=True, help_text="What a curator asked the visitor (needs more information)."
    )

    final_taxon = models.ForeignKey(
        Taxon, null=True, blank=True, on_delete=models.SET_NULL, related_name="confirmed_in"
    )
    control_status = models.CharField(max_length=30, choices=ControlStatus.choices, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["status", "received_at"]),
            models.Index(fields=["campaign", "status"]),
            models.Index(fields=["status", "claim_expires_at"]),
            models.Index(fields=["park", "final_taxon", "status"]),
        ]

    def __str__(self) -> str:
        return f"Sighting {self.uuid}"

    def get_absolute_url(self) -> str:
        return reverse("sighting-detail", kwargs={"uuid": self.uuid})


class Photo(models.Model):
    observation = models.ForeignKey(Observation, on_delete=models.CASCADE, related_name="photos")
    position = models.PositiveSmallIntegerField(default=0)
    original = models.FileField(upload_to="originals/%Y/%m/", storage=originals_storage)
    image = models.ImageField(upload_to="photos/%Y/%m/", help_text="Public derivative, no EXIF.")
    thumbnail = models.ImageField(upload_to="thumbnails/%Y/%m/")
    sha256 = models.CharField(max_length=64, db_index=True)
    # 64-bit DCT perceptual hash as four 16-bit bands, each indexed: two hashes within
    # 3 bits of each other share at least one band (pigeonhole), so the search is exact.
    phash = models.CharField(max_length=16)
    phash_band0 = models.PositiveIntegerField(db_index=True)
    phash_band1 = models.PositiveIntegerField(db_index=True)
    phash_band2 = models.PositiveIntegerField(db_index=True)
    phash_band3 = models.PositiveIntegerField(db_index=True)
    width = models.PositiveIntegerField(help_text="Of the original, after orientation.")
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    size_bytes = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["observation", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["observation", "position"], name="photo_position_unique"
            )
        ]

    def __str__(self) -> str:
        return f"Photo {self.position + 1} of {self.observation_id}"


class ParkContact(models.Model):
    """A park manager (or a service) to alert when an invasive species is confirmed."""

    class Delivery(models.TextChoices):
        IMMEDIATE = "immediate", "at once"
        DAILY_DIGEST = "daily_digest", "daily digest"

    park = models.ForeignKey(Park, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    webhook_url = models.URLField(blank=True, help_text="Receives a signed JSON POST.")
    webhook_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="HMAC-SHA256 key for the X-ParkWatch-Signature header.",
    )
    delivery = models.CharField(max_length=20, choices=Delivery.choices, default=Delivery.IMMEDIATE)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["park", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.park})"


class Review(models.Model):
    """One curator's decision on a sighting. Immutable: the audit trail."""

    class Decision(models.TextChoices):
        CONFIRM = "confirm"
        REJECT = "reject"
        UNIDENTIFIABLE = "unidentifiable"
        NEEDS_INFO = "needs_info", "needs more information"

    class RejectReason(models.TextChoices):
        NOT_THE_ORGANISM = "not_the_organism", "not the organism"
        WRONG_PLACE = "wrong_place", "wrong place"
        BAD_PHOTO = "bad_photo", "bad photo"
        OTHER = "other"

    observation = models.ForeignKey(Observation, on_delete=models.CASCADE, related_name="reviews")
    curator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    decision = models.CharField(max_length=20, choices=Decision.choices)
    taxon = models.ForeignKey(
        Taxon, null=True, blank=True, on_delete=models.PROTECT, related_name="reviews"
    )
    reject_reason = models.CharField(max_length=30, choices=RejectReason.choices, blank=True)
    comment = models.TextField(blank=True)
    message_to_observer = models.TextField(blank=True)
    by_lead = models.BooleanField(
        default=False, help_text="A lead curator's (or admin's) final say."
    )
    # Which round of reviewing this belongs to: a new round starts after each verdict.
    round = models.PositiveSmallIntegerField(default=1)
    ai_snapshot = models.JSONField(
        default=dict, blank=True, help_text="What the AI said at the time."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["observation", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["observation", "curator", "round"], name="one_review_per_curator_per_round"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.curator} on {self.observation_id}"


class Alert(models.Model):
    """A message to a park contact about a confirmed invasive sighting; never lost."""

    class Channel(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    observation = models.ForeignKey(Observation, on_delete=models.CASCADE, related_name="alerts")
    park = models.ForeignKey(Park, on_delete=models.CASCADE, related_name="alerts")
    contact = models.ForeignKey(
        ParkContact, null=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    review = models.ForeignKey(Review, null=True, on_delete=models.SET_NULL, related_name="alerts")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    recipients = models.TextField(help_text="E-mail address or webhook URL.")
    is_digest = models.BooleanField(default=False)
    is_first_record = models.BooleanField(default=False)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["review", "contact", "channel"], name="one_alert_per_review_contact_channel"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} alert to {self.recipients} ({self.state})"


class AlertAttempt(models.Model):
    """Every delivery attempt, successful or not."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["alert", "attempted_at"]

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'failed'} at {self.attempted_at:%Y-%m-%d %H:%M:%S}"


class ControlEvent(models.Model):
    """A step in the follow-up of a confirmed invasive sighting: who, when, what, why."""

    observation = models.ForeignKey(
        Observation, on_delete=models.CASCADE, related_name="control_events"
    )
    from_status = models.CharField(
        max_length=30, choices=Observation.ControlStatus.choices, blank=True
    )
    to_status = models.CharField(max_length=30, choices=Observation.ControlStatus.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["observation", "created_at"]

    def __str__(self) -> str:
        return f"{self.from_status or 'new'} -> {self.to_status}"
