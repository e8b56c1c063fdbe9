"""`python manage.py import_dataset PATH`: an image-classification-tf dataset into a campaign."""

from django.core.management.base import BaseCommand, CommandError

from classifier.services.datasets import dataset_import_deepoc
from observations.errors import ParkWatchError
from observations.models import Campaign


class Command(BaseCommand):
    help = (
        "Import a DEEP-OC (image-classification-tf) dataset: PATH/images/ with "
        "PATH/dataset_files/{train,val,test,classes,info}.txt. Its splits are kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--campaign", help="Campaign slug (default: the default campaign).")
        parser.add_argument("--source", help="A name for the dataset (default: the folder's name).")
        parser.add_argument("--no-create-missing-taxa", action="store_true")

    def handle(self, path, campaign=None, source=None, no_create_missing_taxa=False, **options):
        campaigns = Campaign.objects.all()
        target = (
            campaigns.filter(slug=campaign).first()
            if campaign
            else campaigns.filter(is_default=True).first()
        )
        if target is None:
            raise CommandError(
                f"No campaign {campaign!r}." if campaign else "No default campaign: run seed_demo."
            )
        try:
            count = dataset_import_deepoc(
                path=path,
                campaign=target,
                source=source,
                create_missing_taxa=not no_create_missing_taxa,
            )
        except ParkWatchError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(self.style.SUCCESS(f"Imported {count} image(s) into {target.name}."))
