"""Admin: team channels and people's preferences (audited), the outbox read-only with a
"send again" action for failed deliveries (the failure state after N attempts)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from apps.audit.services import audit_record_standalone, audited_atomic
from apps.core.admin import ReadOnlyAdmin
from apps.notifications.events import ALL_EVENT_KINDS, DeliveryState, EventKind
from apps.notifications.models import Delivery, Notification, TeamChannel, UserPreference
from apps.notifications.services import delivery_retry


class EventsField(forms.MultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        kwargs.setdefault("choices", EventKind.choices)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)


class _AuditedAdmin(admin.ModelAdmin):
    """Saves and deletes open with the audit chain lock (apps.audit.services, lock
    order) and write an audit row, like the releases admin."""

    def changeform_view(self, request, *args, **kwargs):
        with audited_atomic():
            return super().changeform_view(request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        with audited_atomic():
            return super().delete_view(request, *args, **kwargs)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record_standalone(
            actor=request.user,
            action=f"{obj._meta.model_name}.{'change' if change else 'create'}",
            target_type=obj._meta.model_name,
            target_id=obj.pk,
            after={"changed": sorted(form.changed_data)},
        )

    def delete_model(self, request, obj):
        pk = obj.pk
        super().delete_model(request, obj)
        audit_record_standalone(
            actor=request.user,
            action=f"{obj._meta.model_name}.delete",
            target_type=obj._meta.model_name,
            target_id=pk,
        )


class TeamChannelForm(forms.ModelForm):
    events = EventsField(initial=list(ALL_EVENT_KINDS))

    class Meta:
        model = TeamChannel
        fields = ["team", "channel", "destination", "events", "active"]

    def clean(self):
        cleaned = super().clean()
        channel, destination = cleaned.get("channel"), cleaned.get("destination", "")
        if channel == "email":
            try:
                forms.EmailField().clean(destination)
            except forms.ValidationError:
                self.add_error("destination", "An e-mail channel needs an e-mail address.")
        elif channel and not destination.startswith(("https://", "http://")):
            self.add_error("destination", "A webhook channel needs an http(s) URL.")
        return cleaned


@admin.register(TeamChannel)
class TeamChannelAdmin(_AuditedAdmin):
    form = TeamChannelForm
    list_display = ("team", "channel", "destination", "active")
    list_filter = ("channel", "active", "team")
    search_fields = ("team", "destination")


class UserPreferenceForm(forms.ModelForm):
    events = EventsField()
    slack_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    webhook_url = forms.URLField(required=False, max_length=500, assume_scheme="https")

    class Meta:
        model = UserPreference
        fields = ["user", "events", "email", "slack_url", "webhook_url"]


@admin.register(UserPreference)
class UserPreferenceAdmin(_AuditedAdmin):
    form = UserPreferenceForm
    list_display = ("user", "email", "updated_at")
    search_fields = ("user__username",)


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = ("channel", "destination", "state", "attempts", "last_error", "delivered_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "title", "team")
    list_filter = ("kind", "team")
    search_fields = ("title", "event_id")
    inlines = [DeliveryInline]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "notification",
        "channel",
        "destination",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    list_filter = ("state", "channel")
    search_fields = ("destination", "notification__event_id")
    actions = ["send_again"]

    @admin.action(description="Send the selected failed deliveries again")
    def send_again(self, request, queryset):
        failed = queryset.filter(state=DeliveryState.FAILED).values_list("pk", flat=True)
        count = delivery_retry(actor=request.user, delivery_ids=list(failed))
        messages.info(request, f"{count} failed deliveries queued again.")
