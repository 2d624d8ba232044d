from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils import timezone

from analytics.charts import build_dashboard_charts
from analytics.models import DailyActiveUsers, DailyEventRollup, DailyMetricRollup, Dashboard, EventDefinition
from analytics.selectors import get_dashboard_data
from analytics.services import forget_event_registry
from chatfocus.admin import ReadOnlyAdminMixin

RANGES = {"7", "30", "90"}


@admin.register(EventDefinition)
class EventDefinitionAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "active", "description"]
    list_filter = ["kind", "active"]
    search_fields = ["name", "description"]
    actions = ["activate", "deactivate"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_event_registry()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        forget_event_registry()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        forget_event_registry()

    @admin.action(description="Accept the selected names")
    def activate(self, request, queryset):
        queryset.update(active=True)
        forget_event_registry()

    @admin.action(description="Reject the selected names as unknown")
    def deactivate(self, request, queryset):
        queryset.update(active=False)
        forget_event_registry()


class ReadOnlyRollupAdmin(admin.ModelAdmin):
    """Rollups are computed by `analytics_rollup`; staff read them, never edit them."""

    date_hierarchy = "day"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DailyEventRollup)
class DailyEventRollupAdmin(ReadOnlyRollupAdmin):
    list_display = ["day", "name", "tier", "client_version", "count", "unique_users"]
    list_filter = ["tier", "name"]
    search_fields = ["name", "client_version"]


@admin.register(DailyActiveUsers)
class DailyActiveUsersAdmin(ReadOnlyRollupAdmin):
    list_display = ["day", "dau", "wau", "mau"]


@admin.register(DailyMetricRollup)
class DailyMetricRollupAdmin(ReadOnlyRollupAdmin):
    list_display = ["day", "name", "count", "p50", "p95", "p99"]
    list_filter = ["name"]


@admin.register(Dashboard)
class DashboardAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The staff dashboard: every staff member may read it; it has nothing to edit."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def changelist_view(self, request, extra_context=None):
        requested = request.GET.get("days", "30")
        days = int(requested) if requested in RANGES else 30
        data = get_dashboard_data(days=days, last_day=timezone.now().date())
        context = {
            **self.admin_site.each_context(request),
            "title": "Analytics dashboard",
            "opts": self.model._meta,
            "days": days,
            "ranges": sorted(int(value) for value in RANGES),
            "charts": build_dashboard_charts(data),
        }
        return TemplateResponse(request, "admin/analytics/dashboard.html", context)
