"""`python manage.py import_classifier PATH`: register a trained classifier in the model registry.

PATH decides the kind: a folder or a .tar.gz/.tar.xz is a DEEP-OC image-classification-tf
model; a .keras/.h5 file is a Keras model (needs --labels); an .onnx file is an ONNX model
(needs --preprocessing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from classifier.engine.deepoc_format import ARCHIVE_SUFFIXES
from classifier.models import ClassifierVersion
from classifier.services.importing import (
    KERAS_SUFFIXES,
    ONNX_SUFFIXES,
    classifier_import_deepoc,
    classifier_import_keras,
    classifier_import_onnx,
    preprocessing_read,
)
from classifier.services.registry import RegistryError
from observations.models import Campaign, Taxon

KINDS_HELP = (
    "a DEEP-OC model folder or .tar.gz/.tar.xz, a .keras/.h5 file with --labels, "
    "or an .onnx file with --preprocessing"
)


def campaign_from_option(slug: str | None) -> Campaign:
    """The campaign a --campaign option names, or the default one; CommandError otherwise."""
    known = (
        ", ".join(Campaign.objects.order_by("slug").values_list("slug", flat=True)) or "none yet"
    )
    if slug:
        campaign = Campaign.objects.filter(slug=slug).first()
        if campaign is None:
            raise CommandError(f"Unknown campaign {slug!r}. Campaigns: {known}.")
        return campaign
    campaign = Campaign.objects.filter(is_default=True).first()
    if campaign is None:
        raise CommandError(
            f"There is no default campaign: pass --campaign SLUG (campaigns: {known})."
        )
    return campaign


def describe_preprocessing(spec: dict) -> str:
    parts = [f"{spec['mode']}", spec.get("resize", "center_crop"), f"{spec['image_size']} px"]
    if spec.get("mean_rgb"):
        parts.append(f"mean RGB {spec['mean_rgb']}")
    if spec.get("std_rgb"):
        parts.append(f"std RGB {spec['std_rgb']}")
    return ", ".join(parts)


def path_kind(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir() or name.endswith(ARCHIVE_SUFFIXES):
        return "deepoc"
    if name.endswith(KERAS_SUFFIXES):
        return "keras"
    if name.endswith(ONNX_SUFFIXES):
        return "onnx"
    raise CommandError(f"Cannot tell what {path.name} is. Expected {KINDS_HELP}.")


class Command(BaseCommand):
    help = f"Register a trained classifier: {KINDS_HELP}."

    def add_arguments(self, parser):
        parser.add_argument("path", help="The model: " + KINDS_HELP + ".")
        parser.add_argument("--labels", help="Labels file, one class name per line (Keras, ONNX).")
        parser.add_argument(
            "--preprocessing",
            help='Preprocessing JSON, e.g. {"image_size": 256, "mode": "unit", "resize": "squash"} '
            '(ONNX: required, may hold a "labels" list; Keras: optional, default Xception scaling '
            "and centre crop at the model's input size).",
        )
        parser.add_argument("--campaign", help="Campaign slug (default: the default campaign).")
        parser.add_argument("--name", help="Version name (default: from the file or folder name).")
        parser.add_argument(
            "--tta",
            default=ClassifierVersion.TTA.NONE,
            choices=ClassifierVersion.TTA.values,
            help="Test-time augmentation when serving (default: none).",
        )
        parser.add_argument(
            "--activate", action="store_true", help="Make it the campaign's active classifier."
        )
        parser.add_argument("--licence", default="", help="Licence of the weights, e.g. CC-BY-4.0.")
        parser.add_argument("--citation", default="", help="How to cite the model.")
        parser.add_argument("--description", default="", help="A note shown with the version.")
        parser.add_argument("--architecture", default="", help="Architecture name (Keras, ONNX).")
        parser.add_argument(
            "--ckpt-name", help="DEEP-OC checkpoint in ckpts/ (default: final_model.h5)."
        )
        parser.add_argument(
            "--create-missing-taxa",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Create a taxon for each label no taxon matches (default: yes for DEEP-OC, no otherwise).",
        )

    def handle(self, *args, **options):
        path = Path(options["path"]).expanduser()
        if not path.exists():
            raise CommandError(f"No such file or folder: {path}.")
        kind = path_kind(path)
        campaign = campaign_from_option(options["campaign"])
        common = {
            "campaign": campaign,
            "name": options["name"],
            "tta": options["tta"],
            "activate": options["activate"],
            "licence": options["licence"],
            "citation": options["citation"],
            "description": options["description"],
        }
        create_taxa = options["create_missing_taxa"]
        if create_taxa is not None:
            common["create_missing_taxa"] = create_taxa
        taxa_before = set(Taxon.objects.values_list("pk", flat=True))
        try:
            version = self._import(kind, path, options, common)
        except RegistryError as exc:
            raise CommandError(exc.detail) from None
        self._report(version, taxa_before)

    def _import(self, kind: str, path: Path, options: dict, common: dict) -> ClassifierVersion:
        labels, preprocessing = options["labels"], options["preprocessing"]
        if kind == "deepoc":
            if labels or preprocessing:
                raise CommandError(
                    "A DEEP-OC model brings its own labels and preprocessing "
                    "(dataset_files/classes.txt, conf/conf.json): drop --labels and --preprocessing."
                )
            return classifier_import_deepoc(path=path, ckpt_name=options["ckpt_name"], **common)
        if kind == "keras":
            if not labels:
                raise CommandError(
                    f"{path.name} is a Keras model: pass --labels FILE with its class names, "
                    "one per line, in output order."
                )
            spec = None
            if preprocessing:
                spec, _ = preprocessing_read(preprocessing)
            return classifier_import_keras(
                path=path,
                labels_path=labels,
                preprocessing=spec,
                architecture=options["architecture"],
                **common,
            )
        if not preprocessing:
            raise CommandError(
                f"{path.name} is an ONNX model: pass --preprocessing FILE.json, e.g. "
                '{"image_size": 256, "mode": "unit", "resize": "squash"}.'
            )
        return classifier_import_onnx(
            path=path,
            preprocessing_path=preprocessing,
            labels_path=labels,
            architecture=options["architecture"],
            **common,
        )

    def _report(self, version: ClassifierVersion, taxa_before: set[int]) -> None:
        labels = list(version.labels.select_related("taxon").order_by("index"))
        mapped = sum(1 for label in labels if label.taxon_id)
        created = [
            label.taxon.scientific_name
            for label in labels
            if label.taxon_id and label.taxon_id not in taxa_before
        ]
        write = self.stdout.write
        write(self.style.SUCCESS(f"Registered classifier version {version.pk}: {version.name}"))
        write(f"  campaign       {version.campaign.slug}")
        write(
            f"  backend        {version.backend}"
            + (f" ({version.architecture})" if version.architecture else "")
        )
        write(
            f"  classes        {len(labels)} ({mapped} mapped to taxa, {len(labels) - mapped} raw labels)"
        )
        if created:
            shown = ", ".join(created[:10]) + (", ..." if len(created) > 10 else "")
            write(f"  new taxa       {len(created)}: {shown}")
        write(f"  input size     {version.input_size} px")
        write(f"  preprocessing  {describe_preprocessing(version.preprocessing)}")
        write(f"  tta            {version.tta}")
        write(f"  weights        {version.weights.name}")
        write(f"  sha256         {version.weights_sha256}")
        if version.metrics:
            figures = ", ".join(
                f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                for key, value in version.metrics.items()
            )
            write(f"  metrics        {figures}")
        write(f"  state          {version.state}")
        for note in version.model_card.get("import_warnings", []):
            self.stderr.write(f"Warning: {note}", style_func=self.style.WARNING)
        if version.state != ClassifierVersion.State.ACTIVE:
            write(
                "Not active: the campaign keeps its current classifier until an admin activates this one."
            )
