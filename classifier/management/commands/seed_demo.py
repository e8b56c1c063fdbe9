"""`python manage.py seed_demo`: demo campaign, park, taxa and users (idempotent).

It lives in the classifier app because the demo also registers a demo classifier, and the
classifier may import the domain while the domain never imports the classifier.
"""

from django.core.management.base import BaseCommand

from classifier.services.demo import demo_classifier_ensure
from observations.services.demo import DEMO_PASSWORDS, demo_seed


class Command(BaseCommand):
    help = "Create or update the demo campaign of Ordesa y Monte Perdido, its taxa and demo users."

    def add_arguments(self, parser):
        parser.add_argument("--no-users", action="store_true", help="Do not create the demo users.")

    def handle(self, *args, no_users=False, **options):
        seed = demo_seed(with_users=not no_users)
        self.stdout.write(
            self.style.SUCCESS(
                f"Campaign '{seed.campaign.name}' with {len(seed.taxa)} taxa in park '{seed.park.name}' "
                "(boundary approximate)."
            )
        )
        version, created = demo_classifier_ensure(campaign=seed.campaign)
        self.stdout.write(
            f"{'Registered' if created else 'Kept'} {version.label} ({version.state}); "
            "it is a demo model, not trained on real photos."
        )
        for username in seed.users:
            self.stdout.write(f"  demo user {username!r}, password {DEMO_PASSWORDS[username]!r}")
