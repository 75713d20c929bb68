from django.contrib import admin

from apps.registry.models import AliasUpdate, ModelVersion, RegisteredModel, RegistrySyncState


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "version",
        "status",
        "run_id",
        "aliases",
        "deleted_upstream_at",
        "synced_at",
        "details_synced_at",
    )
    list_filter = ("status", "name")
    search_fields = ("name", "run_id")


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "aliases",
        "mlflow_updated_at",
        "last_success_at",
        "last_error_at",
        "deleted_upstream_at",
    )
    search_fields = ("name",)
    readonly_fields = (
        "mlflow_created_at",
        "mlflow_updated_at",
        "last_attempt_at",
        "last_success_at",
        "last_error",
        "last_error_at",
        "fully_read_at",
    )


@admin.register(RegistrySyncState)
class RegistrySyncStateAdmin(admin.ModelAdmin):
    list_display = ("last_attempt_at", "last_success_at", "last_error_at", "last_error")
    readonly_fields = (
        "last_attempt_at",
        "last_success_at",
        "last_error",
        "last_error_at",
        "last_result",
    )


@admin.register(AliasUpdate)
class AliasUpdateAdmin(admin.ModelAdmin):
    # Rows are the record of what Slipway asked MLflow to do; change them through
    # the services (registry_alias_retry), not here.
    list_display = (
        "alias",
        "model_version",
        "release_uid",
        "state",
        "attempts",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("state", "alias")
    search_fields = ("release_uid", "model_version__name")
    readonly_fields = [f.name for f in AliasUpdate._meta.fields]

    def has_add_permission(self, request):
        return False
