"""ASGI entry point of the `realtime` process: `/ws/sync` (syncsettings.consumers).

The WSGI pools (gunicorn) serve the API; this process holds the sockets. It answers HTTP too (the
same Django app), which `manage.py runserver` relies on to serve both in development.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatfocus.settings")
# Before anything imports models: this sets Django up.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from syncsettings.consumers import SyncConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter([path("ws/sync", SyncConsumer.as_asgi())]),
    }
)
