from allauth.account.models import EmailAddress
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Session, User
from accounts.oauth import PROVIDERS
from accounts.sessions import revoke_session_by_id
from billing.services import TIERS, filter_users_by_tier


class UserCreateForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class EmailVerifiedFilter(admin.SimpleListFilter):
    title = "email verified"
    parameter_name = "verified"

    def lookups(self, request, model_admin):
        return (("yes", "Verified"), ("no", "Not verified"))

    def queryset(self, request, queryset):
        verified = EmailAddress.objects.filter(user=OuterRef("pk"), email__iexact=OuterRef("email"), verified=True)
        if self.value() == "yes":
            return queryset.filter(Exists(verified))
        if self.value() == "no":
            return queryset.exclude(Exists(verified))
        return queryset


class ProviderFilter(admin.SimpleListFilter):
    title = "login method"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return [("password", "Password")] + [(provider, provider.title()) for provider in PROVIDERS]

    def queryset(self, request, queryset):
        if self.value() == "password":
            return queryset.exclude(password__startswith=UNUSABLE_PASSWORD_PREFIX)
        if self.value() in PROVIDERS:
            return queryset.filter(socialaccount__provider=self.value()).distinct()
        return queryset


class TierFilter(admin.SimpleListFilter):
    title = "tier"
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        return [(tier, tier.title()) for tier in TIERS]

    def queryset(self, request, queryset):
        if self.value() in TIERS:
            return filter_users_by_tier(queryset, tier=self.value())
        return queryset


class SessionInline(admin.TabularInline):
    model = Session
    fields = ("device_name", "method", "ip_address", "created_at", "last_used_at", "revoked_at", "revoked_reason")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-created_at",)
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreateForm
    ordering = ("-date_joined",)
    list_display = ("email", "name", "is_active", "is_staff", "date_joined")
    list_filter = (
        TierFilter,
        EmailVerifiedFilter,
        "is_staff",
        ProviderFilter,
        "is_active",
        "is_superuser",
        "date_joined",
    )
    inlines = (SessionInline,)
    search_fields = ("email", "name")
    readonly_fields = ("id", "date_joined", "updated_at", "last_login")
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "updated_at", "last_login")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),)


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("active", "Active"), ("revoked", "Revoked"))

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True, refresh_expires_at__gt=timezone.now())
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("user", "device_name", "method", "ip_address", "created_at", "last_used_at", "revoked_at")
    list_filter = (SessionStateFilter, "method", "revoked_reason")
    list_select_related = ("user",)
    search_fields = ("user__email", "device_name", "ip_address", "id")
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Session._meta.fields]
    actions = ("revoke_sessions",)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected sessions (their tokens stop working at once)")
    def revoke_sessions(self, request, queryset):
        session_ids = list(queryset.filter(revoked_at__isnull=True).values_list("id", flat=True))
        for session_id in session_ids:
            revoke_session_by_id(session_id=session_id, reason="staff")
        self.message_user(request, f"Revoked {len(session_ids)} session(s).", messages.SUCCESS)
