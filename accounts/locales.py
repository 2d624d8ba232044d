"""The languages the product speaks: the API's `locale` and the hosted pages' language menu offer these."""

LOCALES = {
    "en": "English",
    "de": "Deutsch",
    "es": "Español",
    "fr": "Français",
    "it": "Italiano",
    "ja": "日本語",
    "nl": "Nederlands",
    "pl": "Polski",
    "pt": "Português",
}
LOCALE_CHOICES = list(LOCALES.items())
