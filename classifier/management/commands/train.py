"""`python manage.py train`: freeze a dataset snapshot and queue (or run) a training run."""

import json

from django.core.management.base import BaseCommand, CommandError

from classifier.models import TrainingRun
from classifier.services.training import training_run_create, training_run_execute
from observations.errors import ParkWatchError
from observations.models import Campaign


class Command(BaseCommand):
    help = (
        "Train a new classifier version from the campaign's confirmed photos and imported datasets."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", help="Campaign slug (default: the default campaign).")
        parser.add_argument(
            "--architecture",
            help="xception (default), mobilenet_v3_small, efficientnet_b0, resnet50, small_cnn",
        )
        parser.add_argument("--image-size", type=int)
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--learning-rate", type=float)
        parser.add_argument(
            "--start-from", choices=["active", "imagenet", "scratch"], default="imagenet"
        )
        parser.add_argument(
            "--parameters", help="More parameters as JSON, e.g. '{\"augmentation\": null}'."
        )
        parser.add_argument(
            "--resume", type=int, metavar="RUN", help="Resume a failed or cancelled run."
        )
        parser.add_argument(
            "--here",
            action="store_true",
            help="Train in this process instead of queueing for the training worker.",
        )

    def handle(self, *args, **options):
        campaigns = Campaign.objects.all()
        slug = options["campaign"]
        campaign = (
            campaigns.filter(slug=slug).first()
            if slug
            else campaigns.filter(is_default=True).first()
        )
        if campaign is None:
            raise CommandError(
                f"No campaign {slug!r}." if slug else "No default campaign: run seed_demo."
            )
        try:
            parameters = json.loads(options["parameters"]) if options["parameters"] else {}
        except json.JSONDecodeError as exc:
            raise CommandError(f"--parameters is not JSON: {exc}") from None
        for option, key in (
            ("architecture", "architecture"),
            ("image_size", "image_size"),
            ("epochs", "epochs"),
            ("batch_size", "batch_size"),
            ("learning_rate", "learning_rate"),
        ):
            if options[option] is not None:
                parameters[key] = options[option]
        parameters["start_from"] = options["start_from"]
        resume = None
        if options["resume"]:
            resume = TrainingRun.objects.filter(pk=options["resume"]).first()
            if resume is None:
                raise CommandError(f"No training run {options['resume']}.")
        try:
            run = training_run_create(
                campaign=campaign,
                parameters=parameters,
                resume_from=resume,
                enqueue=not options["here"],
            )
        except ParkWatchError as exc:
            raise CommandError(exc.detail) from None
        snapshot = run.snapshot
        self.stdout.write(
            f"Training run {run.pk} on dataset v{snapshot.version} ({len(snapshot.labels)} classes): "
            + ", ".join(
                f"{k}={v}" for k, v in sorted(run.parameters.items()) if k != "augmentation"
            )
        )
        if not options["here"]:
            self.stdout.write(
                "Queued for the training worker (celery -A webapp worker -Q training)."
            )
            return
        run = training_run_execute(run_id=run.pk)
        self.stdout.write(run.log)
        if run.state != TrainingRun.State.SUCCEEDED:
            raise CommandError(f"Training run {run.pk} {run.state}: {run.error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Run {run.pk} produced {run.result_version.label} ({run.result_version.state})."
            )
        )
