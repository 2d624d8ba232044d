"""The production settings, plus the bench-only baseline view (bench/urls.py); nothing else differs."""

from chatfocus.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
