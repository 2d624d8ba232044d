"""Encryption at rest for values of `secret.` keys: MultiFernet over settings.FIELD_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so a new key is put first, `sync_rotate_keys` re-encrypts
the stored tokens, and then the old key can be dropped. A stored secret value is the Fernet token
(a JSON string) of the value's compact JSON.

Without configured keys a key derived from SECRET_KEY encrypts. That key stays usable for decryption
after FIELD_ENCRYPTION_KEYS is set (DESIGN §5), so configuring keys later never makes stored secrets
unreadable; `sync_rotate_keys` then moves them to the configured key.
"""

import base64
import hashlib
import json
import logging
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings

logger = logging.getLogger(__name__)

SECRET_PREFIX = "secret."


def is_secret(key: str) -> bool:
    return key.startswith(SECRET_PREFIX)


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    derived = Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"sync-secrets:{secret_key}".encode()).digest()))
    if not keys:
        # Development convenience only: production sets FIELD_ENCRYPTION_KEYS (a deploy check warns).
        logger.warning("FIELD_ENCRYPTION_KEYS is empty: secret sync values use a key derived from SECRET_KEY.")
        return MultiFernet([derived])
    # The derived key goes last: it never encrypts again, it only reads what was written before keys existed.
    return MultiFernet([*(Fernet(key.encode()) for key in keys), derived])


def get_fernet() -> MultiFernet:
    """The MultiFernet for the configured keys (cached per key list, so settings overrides apply)."""
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt_value(value) -> str:
    return get_fernet().encrypt(json.dumps(value, separators=(",", ":")).encode()).decode()


def decrypt_value(token: str):
    """The plain value of a stored token (InvalidToken when no configured key can read it)."""
    return json.loads(get_fernet().decrypt(token.encode()))


def rotate_token(token: str) -> str:
    """The token re-encrypted with the first key (MultiFernet.rotate)."""
    return get_fernet().rotate(token.encode()).decode()


def seal(key: str, value):
    """The form stored for `key`: encrypted for secret keys, unchanged otherwise."""
    return encrypt_value(value) if value is not None and is_secret(key) else value


def unseal(key: str, stored):
    """The plain value of a stored `key` value."""
    return decrypt_value(stored) if stored is not None and is_secret(key) else stored
