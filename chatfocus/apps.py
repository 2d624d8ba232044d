from django.apps import AppConfig


class ChatFocusConfig(AppConfig):
    name = "chatfocus"
    verbose_name = "ChatFocus"

    def ready(self):
        from chatfocus import checks  # noqa: F401  (registers the deploy checks)
