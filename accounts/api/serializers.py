"""Input validation and output shapes of the accounts API."""

from rest_framework import serializers

from accounts.models import Session


class SessionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField(help_text="True for the session that made this request.")

    class Meta:
        model = Session
        fields = ("id", "device_name", "user_agent", "ip_address", "method", "created_at", "last_used_at", "current")

    def get_current(self, session) -> bool:
        return session.id == getattr(self.context["request"].user, "session_id", None)
