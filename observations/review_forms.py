"""Forms of the curators' pages: the queue's filters and bulk decisions, one decision, control work.

They only shape the input; `review_decide`, `review_bulk_decide` and `control_advance` decide what
is allowed and raise ParkWatchError for anything they refuse, which the views show.
"""

from __future__ import annotations

import re
import uuid

from django import forms
from django.core.exceptions import ValidationError

from observations.models import Campaign, Observation, Park, Review, Taxon
from observations.selectors import curator_campaigns

CONTROL_ORDER = list(Observation.ControlStatus.values)


class QueueFilterForm(forms.Form):
    """What `review_queue` filters on; an invalid value is ignored (and said so)."""

    campaign = forms.ChoiceField(required=False)
    park = forms.ChoiceField(required=False)
    ai_taxon = forms.ModelChoiceField(
        queryset=Taxon.objects.none(), required=False, label="AI suggests", empty_label="Any taxon"
    )
    invasive_only = forms.BooleanField(required=False, label="Likely invasive only")
    duplicates_only = forms.BooleanField(required=False, label="Possible duplicates only")

    def __init__(self, data=None, *, curator) -> None:
        super().__init__(data)
        campaigns = curator_campaigns(curator)
        if campaigns is None:
            campaigns = Campaign.objects.all()
        campaigns = list(campaigns.order_by("name"))
        parks = Park.objects.filter(campaigns__in=campaigns).distinct().order_by("name")
        taxa = Taxon.objects.filter(campaigns__in=campaigns).distinct().order_by("scientific_name")
        self.fields["campaign"].choices = [("", "All campaigns")] + [
            (campaign.slug, campaign.name) for campaign in campaigns
        ]
        self.fields["park"].choices = [("", "All parks")] + [
            (park.slug, park.name) for park in parks
        ]
        self.fields["ai_taxon"].queryset = taxa
        self.fields["ai_taxon"].label_from_instance = lambda taxon: taxon.display_name

    def filters(self) -> dict:
        """The valid filters, as `review_queue(filters=...)` takes them (JSON-safe)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        data = self.cleaned_data
        filters = {}
        for name in ("campaign", "park"):
            if data.get(name):
                filters[name] = data[name]
        if data.get("ai_taxon"):
            filters["ai_taxon"] = data["ai_taxon"].pk
        for name in ("invasive_only", "duplicates_only"):
            if data.get(name):
                filters[name] = True
        return filters


class UUIDListField(forms.Field):
    """Several sighting references under one name (the queue's checkboxes)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {
        "required": "Select at least one sighting.",
        "invalid": "“%(value)s” is not a sighting reference.",
    }

    def to_python(self, value) -> list[str]:
        if not value:
            return []
        if not isinstance(value, list | tuple):
            value = [value]
        cleaned = []
        for item in value:
            try:
                reference = str(uuid.UUID(str(item)))
            except ValueError:
                raise ValidationError(
                    self.error_messages["invalid"], code="invalid", params={"value": item}
                ) from None
            if reference not in cleaned:
                cleaned.append(reference)
        return cleaned


class BulkDecisionForm(forms.Form):
    """Confirm the AI's top-1, or reject with one reason, for the selected rows of the queue."""

    ACTIONS = (("confirm", "Confirm the AI's suggestion"), ("reject", "Reject"))

    action = forms.ChoiceField(choices=ACTIONS)
    selected = UUIDListField()
    reject_reason = forms.ChoiceField(
        choices=[("", "Choose a reason")] + list(Review.RejectReason.choices),
        required=False,
        label="Reason",
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("action") == "reject" and not data.get("reject_reason"):
            self.add_error("reject_reason", "Choose why the selected sightings are rejected.")
        return data


def suggestion_taxon_name(text: str) -> str:
    """ "Japanese knotweed (Reynoutria japonica)" -> "Reynoutria japonica"; else the text."""
    match = re.fullmatch(r".*\(([^()]+)\)\s*", text)
    return match.group(1).strip() if match else text.strip()


def resolve_taxon(text: str, campaign: Campaign | None) -> Taxon | None:
    """The taxon a curator typed: scientific or common name, the campaign's own list first."""
    text = " ".join(text.split())
    if not text:
        return None
    names = [text, suggestion_taxon_name(text)]
    pools = [campaign.taxa.all()] if campaign is not None else []
    pools.append(Taxon.objects.all())
    for pool in pools:
        for name in names:
            found = pool.filter(scientific_name__iexact=name).first()
            if found:
                return found
        by_common = list(pool.filter(common_name__iexact=text)[:2])
        if len(by_common) == 1:
            return by_common[0]
    return None


class DecisionForm(forms.Form):
    """One curator's decision on one sighting.

    A rank button (keys 1-5) confirms the AI's suggestion of that rank; otherwise `decision`
    names what to do, with the taxon typed in the search box for a confirmation.
    """

    decision = forms.ChoiceField(choices=Review.Decision.choices, required=False)
    rank = forms.TypedChoiceField(
        choices=[(str(n), str(n)) for n in range(1, 6)],
        coerce=int,
        required=False,
        empty_value=None,
    )
    taxon = forms.CharField(
        required=False,
        max_length=300,
        label="Another taxon",
        widget=forms.TextInput(
            attrs={
                "list": "campaign-taxa",
                "autocomplete": "off",
                "placeholder": "Common or scientific name",
                "spellcheck": "false",
            }
        ),
    )
    reject_reason = forms.ChoiceField(
        choices=Review.RejectReason.choices,
        required=False,
        widget=forms.RadioSelect,
        label="Why reject it?",
    )
    message_to_observer = forms.CharField(
        required=False,
        max_length=2000,
        label="Message to the visitor",
        widget=forms.Textarea(
            attrs={"rows": 2, "placeholder": "e.g. Please add a close-up of the leaves."}
        ),
    )
    comment = forms.CharField(
        required=False,
        max_length=2000,
        label="Comment for other curators",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, data=None, *, campaign: Campaign | None, suggestions: list) -> None:
        super().__init__(data)
        self.campaign = campaign
        self.suggestions = suggestions

    def clean(self) -> dict:
        data = super().clean()
        rank = data.get("rank")
        decision = data.get("decision") or ""
        data["resolved_taxon"] = None
        if rank is not None:
            decision = Review.Decision.CONFIRM
            suggestion = next((s for s in self.suggestions if s["rank"] == rank), None)
            if suggestion is None:
                raise ValidationError(f"The AI made no suggestion number {rank}.")
            if suggestion["taxon"] is None:
                self.add_error(
                    "taxon",
                    f"The AI's suggestion {rank} is a raw label ({suggestion['label']}), not a "
                    "taxon: name the taxon instead.",
                )
            data["resolved_taxon"] = suggestion["taxon"]
        elif not decision:
            raise ValidationError("Choose a decision.")
        elif decision == Review.Decision.CONFIRM:
            text = data.get("taxon", "")
            if not text.strip():
                self.add_error(
                    "taxon",
                    "Pick one of the AI's suggestions (keys 1-5) or name the taxon to confirm.",
                )
            else:
                data["resolved_taxon"] = resolve_taxon(text, self.campaign)
                if data["resolved_taxon"] is None:
                    self.add_error("taxon", f"No taxon called “{text.strip()}” in the list.")
        data["decision"] = decision
        if decision == Review.Decision.REJECT and not data.get("reject_reason"):
            self.add_error("reject_reason", "Choose why you reject the sighting.")
        if (
            decision == Review.Decision.NEEDS_INFO
            and not data.get("message_to_observer", "").strip()
        ):
            self.add_error(
                "message_to_observer", "Say what the visitor should add (a closer photo, ...)."
            )
        if decision != Review.Decision.REJECT:
            data["reject_reason"] = ""
        if decision != Review.Decision.NEEDS_INFO:
            data["message_to_observer"] = ""
        return data


def next_control_status(current: str) -> str:
    """The step after `current` (or `current` itself at the end)."""
    if current not in CONTROL_ORDER:
        return CONTROL_ORDER[0]
    return CONTROL_ORDER[min(CONTROL_ORDER.index(current) + 1, len(CONTROL_ORDER) - 1)]


class ControlAdvanceForm(forms.Form):
    """Move one follow-up to another step, with a note of what was done or seen."""

    to_status = forms.ChoiceField(choices=Observation.ControlStatus.choices, label="New status")
    note = forms.CharField(
        max_length=2000,
        label="Note",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What was done or seen"}),
        error_messages={"required": "Add a note: what was done or seen."},
    )

    def __init__(self, data=None, *, observation: Observation) -> None:
        super().__init__(
            data,
            auto_id=f"case-{observation.uuid}-%s",
            initial={"to_status": next_control_status(observation.control_status)},
        )
        self.fields["to_status"].choices = [
            (value, label)
            for value, label in Observation.ControlStatus.choices
            if value != observation.control_status
        ]
