"""Text PostgreSQL can store: JSON may carry U+0000 and unpaired surrogates (as escapes); text and jsonb cannot."""

import re

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "Text may not contain the NUL character (\\u0000) or unpaired surrogates (\\ud800-\\udfff)."


def is_storable_text(text: str) -> bool:
    return UNSTORABLE.search(text) is None


def has_unstorable_text(value) -> bool:
    """Whether any string in a JSON value (object keys included) could not be stored."""
    if isinstance(value, str):
        return not is_storable_text(value)
    if isinstance(value, dict):
        return any(not is_storable_text(key) or has_unstorable_text(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_unstorable_text(item) for item in value)
    return False
