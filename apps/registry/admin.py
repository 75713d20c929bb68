from django.contrib import admin

from apps.registry.models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "status", "run_id", "deleted_upstream_at", "synced_at")
    list_filter = ("status", "name")
    search_fields = ("name", "run_id")
