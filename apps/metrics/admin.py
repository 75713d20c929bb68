"""Read-only admin pages: what the poll, the SLO judge and the guard recorded. Samples and
roll-ups are left out (millions of rows; the dashboards show them)."""

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.metrics.models import GuardDecision, SloEvent, SloState, SourceHealth


@admin.register(SourceHealth)
class SourceHealthAdmin(ReadOnlyAdmin):
    list_display = (
        "source",
        "last_success_at",
        "consecutive_failures",
        "next_attempt_at",
        "configuration_error",
        "last_error_at",
    )


@admin.register(SloState)
class SloStateAdmin(ReadOnlyAdmin):
    list_display = (
        "service",
        "environment",
        "metric",
        "threshold",
        "last_value",
        "consecutive_bad",
        "in_breach",
        "last_evaluated_at",
    )
    list_filter = ("in_breach", "metric", "environment")
    list_select_related = ("service", "environment")


@admin.register(SloEvent)
class SloEventAdmin(ReadOnlyAdmin):
    list_display = ("time", "kind", "service", "environment", "metric", "value", "threshold")
    list_filter = ("kind", "metric", "environment")
    list_select_related = ("service", "environment")


@admin.register(GuardDecision)
class GuardDecisionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "release", "outcome", "metric", "value", "threshold", "rollback")
    list_filter = ("outcome",)
    list_select_related = (
        "release__service",
        "release__environment",
        "release__model_version",
        "rollback__service",
        "rollback__environment",
        "rollback__model_version",
    )
