"""Email addresses in their canonical form (DESIGN §3); sessions remember their newest refresh token."""

import unicodedata

from django.db import migrations, models

# Frozen copies of accounts.addresses: a migration must not change when the code does.
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}


def stored_form(value: str) -> str:
    email = unicodedata.normalize("NFKC", value or "").strip().lower()
    return "".join(char for char in email if unicodedata.category(char) not in INVISIBLE_CATEGORIES)


def canonicalise_emails(apps, schema_editor):
    """Rewrite every stored address; where two rows would become one, the older account keeps it.

    The newer row is left as it was and named in the output: it cannot be merged without its
    owner, and exact lookups no longer reach it by a look-alike spelling.
    """
    User = apps.get_model("accounts", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    taken = set(User.objects.values_list("email", flat=True))
    for user in User.objects.order_by("date_joined", "id").iterator():
        email, pending = stored_form(user.email), stored_form(user.pending_email)
        if email != user.email:
            if email in taken:
                print(f"\n  accounts {user.id}: {user.email!r} kept, {email!r} belongs to an older account")
                email = user.email
            else:
                taken.discard(user.email)
                taken.add(email)
        if (email, pending) != (user.email, user.pending_email):
            User.objects.filter(id=user.id).update(email=email, pending_email=pending)
    for address in EmailAddress.objects.order_by("id").iterator():
        email = stored_form(address.email)
        if email == address.email:
            continue
        clash = EmailAddress.objects.filter(email=email).exclude(id=address.id)
        if clash.filter(user_id=address.user_id).exists() or (address.verified and clash.filter(verified=True).exists()):
            print(f"\n  account.EmailAddress {address.id}: {address.email!r} kept, {email!r} is taken")
            continue
        EmailAddress.objects.filter(id=address.id).update(email=email)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_pending_email"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [
        migrations.RunPython(canonicalise_emails, migrations.RunPython.noop, elidable=True),
        migrations.RemoveConstraint(model_name="user", name="accounts_user_email_ci_unique"),
        migrations.AddField(model_name="session", name="refresh_jti", field=models.CharField(blank=True, max_length=255)),
    ]
