"""Create the demo user and the staff user (idempotent) and print their credentials."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERS = (
    {"email": "demo@chatfocus.local", "name": "Demo User", "password": "demo-password-123", "staff": False},
    {"email": "admin@chatfocus.local", "name": "Staff Admin", "password": "admin-password-123", "staff": True},
)


class Command(BaseCommand):
    help = "Seed demo data for local development: a demo user and a staff user."

    def handle(self, *args, **options):
        User = get_user_model()
        for spec in DEMO_USERS:
            user, created = User.objects.get_or_create(
                email=spec["email"],
                defaults={"name": spec["name"], "is_staff": spec["staff"], "is_superuser": spec["staff"]},
            )
            if created:
                user.set_password(spec["password"])
                user.save(update_fields=["password"])
            state = "created" if created else "exists"
            role = "staff" if spec["staff"] else "user"
            self.stdout.write(f"{role:5} {spec['email']} / {spec['password']} ({state})")
