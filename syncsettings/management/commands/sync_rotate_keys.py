from django.core.management.base import BaseCommand

from syncsettings.services import rotate_encryption_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret.* sync value with the first FIELD_ENCRYPTION_KEYS key. Put the new key "
        "first, keep the old ones after it, run this, then remove the old keys."
    )

    def handle(self, *args, **options):
        rotated = rotate_encryption_keys()
        self.stdout.write(f"Re-encrypted {rotated} secret values with the current key.")
