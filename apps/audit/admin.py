from django.contrib import admin

from apps.audit.models import AuditEvent
from apps.core.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "actor_label", "action", "target_type", "target_id")
    list_filter = ("action",)
    search_fields = ("actor_label", "target_id", "request_id")
