"""Model signals: the one hook that every write of a profile's rows passes, whoever writes them.

Our services, allauth's views (email addresses, social connections, passwords) and the admin all
save these rows; each save or delete invalidates the cached profile (accounts.services.get_profile).
"""

from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.db.models.signals import post_delete, post_save

from accounts import services
from accounts.models import Preferences, User


def forget_profile_of_row(sender, instance, **kwargs):
    services.forget_profile(user_id=instance.pk if sender is User else instance.user_id)


def connect() -> None:
    for model in (User, Preferences, EmailAddress, SocialAccount):
        for signal in (post_save, post_delete):
            signal.connect(forget_profile_of_row, sender=model, dispatch_uid=f"forget_profile_{model.__name__}")
