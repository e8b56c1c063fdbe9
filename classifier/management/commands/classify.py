"""`python manage.py classify DIR --out FILE.csv`: a folder of photos through a classifier, to CSV.

Nothing is stored: the database is only read for the model registry (the version, its labels
and their taxa). Photos are recognised by their content (JPEG, PNG, WebP, HEIC), never by
their names; a file that is not one, or cannot be decoded, is skipped and reported.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from PIL import Image
from tqdm import tqdm

from classifier.engine.inference import top_k
from classifier.engine.preprocessing import TTA_VIEWS
from classifier.management.commands.import_classifier import campaign_from_option
from classifier.models import ClassifierVersion
from classifier.services.registry import RegistryError, active_version, version_load
from observations.services.photos import describe_format, sniff_format

TOP_K = 5
DEFAULT_BATCH_SIZE = 32


def csv_header(k: int) -> list[str]:
    ranks = [
        f"rank{rank}_{column}"
        for rank in range(1, k + 1)
        for column in ("label", "taxon", "probability")
    ]
    return ["file", *ranks, "model_version"]


def image_files(folder: Path, *, recursive: bool, exclude: Path | None = None) -> list[Path]:
    """The files to classify, sorted; hidden files and folders are left out."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or not path.is_file():
                continue
            if exclude is not None and path.resolve() == exclude:
                continue
            found.append(path)
    return found


def read_photo(classifier, path: Path) -> tuple[Image.Image | None, str]:
    """The decoded photo, or None and why it was skipped."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if not head:
        return None, "the file is empty"
    if sniff_format(head) is None:
        return None, f"{describe_format(head)}, not a JPEG, PNG, WebP or HEIC photo"
    try:
        return classifier.decode(path), ""
    except Exception as exc:  # Pillow raises many types for damaged files
        return None, f"the image cannot be decoded ({exc})"


def batched(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Command(BaseCommand):
    help = "Classify a folder of photos with a registered classifier and write the top 5 to a CSV file."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # `--version` names a classifier version here, in place of Django's "show its version".
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("folder", help="Folder of photos (JPEG, PNG, WebP, HEIC).")
        parser.add_argument("--out", required=True, help="CSV file to write.")
        parser.add_argument(
            "--version",
            type=int,
            help="Classifier version id (default: the campaign's active one).",
        )
        parser.add_argument("--campaign", help="Campaign slug (default: the default campaign).")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Photos per forward pass (default: {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--tta",
            choices=ClassifierVersion.TTA.values,
            help="Test-time augmentation for this run (default: the version's own).",
        )
        parser.add_argument("--recursive", action="store_true", help="Include subfolders.")

    def handle(self, *args, **options):
        folder = Path(options["folder"]).expanduser()
        if not folder.is_dir():
            raise CommandError(f"No such folder: {folder}.")
        out = Path(options["out"]).expanduser()
        if not out.parent.is_dir():
            raise CommandError(f"Cannot write {out}: no folder {out.parent}.")
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")

        version = self._version(options["version"], options["campaign"])
        if options["tta"]:
            version.tta = options["tta"]  # for this run only; never saved
        files = image_files(folder, recursive=options["recursive"], exclude=out.resolve())
        if not files:
            raise CommandError(
                f"{folder} holds no files to classify"
                + ("." if options["recursive"] else " (see --recursive).")
            )

        labels = list(version.labels.select_related("taxon").order_by("index"))
        try:
            classifier = version_load(version, max_batch_size=batch_size * TTA_VIEWS[version.tta])
        except RegistryError as exc:
            raise CommandError(exc.detail) from None
        except Exception as exc:  # the model file does not load with this installation
            raise CommandError(f"Cannot load {version.label}: {exc}") from None

        try:
            written, skipped = self._classify(
                classifier, version, labels, folder, files, out, batch_size
            )
        finally:
            classifier.close()

        for name, reason in skipped:
            self.stderr.write(f"Skipped {name}: {reason}.", style_func=self.style.WARNING)
        if not written:
            out.unlink(missing_ok=True)
            raise CommandError(
                f"None of the {len(files)} files in {folder} is a photo this command can read."
            )
        summary = f"Classified {written} photo{'s' if written != 1 else ''} with {version.label} into {out}"
        if skipped:
            summary += (
                f"; skipped {len(skipped)} file{'s' if len(skipped) != 1 else ''} (listed above)"
            )
        self.stdout.write(self.style.SUCCESS(summary + "."))

    def _classify(self, classifier, version, labels, folder, files, out, batch_size):
        """Write one CSV row per readable photo, a forward pass per batch; return the count
        written and the (file, reason) of each file skipped."""
        k = min(TOP_K, len(labels))
        skipped: list[tuple[str, str]] = []
        written = 0
        # tqdm rewrites its line with "\r": it needs the raw stream, not Django's OutputWrapper.
        progress_to = getattr(self.stderr, "_out", self.stderr)
        with (
            out.open("w", newline="", encoding="utf-8") as handle,
            tqdm(
                total=len(files), unit="file", desc="Classifying", file=progress_to, disable=None
            ) as progress,
        ):
            writer = csv.writer(handle)
            writer.writerow(csv_header(k))
            for chunk in batched(files, batch_size):
                names, images = [], []
                for path in chunk:
                    name = path.relative_to(folder).as_posix()
                    image, reason = read_photo(classifier, path)
                    if image is None:
                        skipped.append((name, reason))
                    else:
                        names.append(name)
                        images.append(image)
                if images:
                    try:
                        probabilities = classifier.predict_images(images)  # one forward pass
                    except Exception as exc:  # a model that fails here fails on every batch
                        raise CommandError(
                            f"{version.label} failed on the batch from {names[0]}: {exc}"
                        ) from None
                    for name, row in zip(names, probabilities, strict=True):
                        ranks = []
                        for index, probability in top_k(row, k):
                            label = labels[index]
                            taxon = label.taxon.scientific_name if label.taxon_id else ""
                            ranks += [label.name, taxon, f"{probability:.6f}"]
                        writer.writerow([name, *ranks, version.label])
                    written += len(images)
                progress.update(len(chunk))
        return written, skipped

    def _version(self, version_id: int | None, campaign_slug: str | None) -> ClassifierVersion:
        if version_id is not None:
            version = (
                ClassifierVersion.objects.select_related("campaign").filter(pk=version_id).first()
            )
            if version is None:
                raise CommandError(f"No classifier version {version_id}.")
            if campaign_slug and version.campaign.slug != campaign_slug:
                raise CommandError(
                    f"Classifier version {version_id} belongs to campaign {version.campaign.slug!r}, "
                    f"not {campaign_slug!r}."
                )
            return version
        campaign = campaign_from_option(campaign_slug)
        version = active_version(campaign_id=campaign.pk)
        if version is None:
            others = ", ".join(
                f"{v.pk} {v.name} ({v.state})"
                for v in campaign.classifier_versions.order_by("pk")[:10]
            )
            raise CommandError(
                f"Campaign {campaign.slug!r} has no active classifier: pass --version ID"
                + (f" (its versions: {others})." if others else " (it has no versions yet).")
            )
        return version
