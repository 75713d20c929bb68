from django.contrib import admin

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record_standalone, audited_atomic
from apps.core.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "actor_label", "action", "target_type", "target_id")
    list_filter = ("action",)
    search_fields = ("actor_label", "target_id", "request_id")


class AuditedAdmin(admin.ModelAdmin):
    """A model admin whose every add, change and delete is written to the audit chain,
    in the same transaction as the change.

    Django's admin wraps a save or delete in transaction.atomic and then calls
    save_model, which audits: the transaction must open with the audit chain lock
    (apps.audit.services, lock order), so these views open it with audited_atomic and
    Django's atomic nests inside as a savepoint.
    """

    def changeform_view(self, request, *args, **kwargs):
        with audited_atomic():
            return super().changeform_view(request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        with audited_atomic():
            return super().delete_view(request, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):
        if request.method != "POST":  # a page view writes nothing: no lock
            return super().changelist_view(request, *args, **kwargs)
        with audited_atomic():
            return super().changelist_view(request, *args, **kwargs)

    def audit_after(self, obj, form, change) -> dict:
        """What the audit row says changed; subclasses add the values that matter."""
        return {"changed": sorted(form.changed_data)}

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record_standalone(
            actor=request.user,
            action=f"{obj._meta.model_name}.{'change' if change else 'create'}",
            target_type=obj._meta.model_name,
            target_id=obj.pk,
            after=self.audit_after(obj, form, change),
        )

    def delete_model(self, request, obj):
        pk, label = obj.pk, str(obj)
        super().delete_model(request, obj)
        audit_record_standalone(
            actor=request.user,
            action=f"{obj._meta.model_name}.delete",
            target_type=obj._meta.model_name,
            target_id=pk,
            before={"was": label},
        )

    def delete_queryset(self, request, queryset):
        # The changelist's "delete selected" action: one audit row per object.
        for obj in queryset.order_by("pk"):
            self.delete_model(request, obj)
