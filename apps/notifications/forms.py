from __future__ import annotations

from django import forms

from apps.notifications.events import EventKind


class PreferenceForm(forms.Form):
    """A person's own notification settings."""

    events = forms.MultipleChoiceField(
        choices=EventKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="what you hear about (only the events you are a recipient of)",
    )
    email = forms.BooleanField(required=False, label="E-mail me")
    slack_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        label="Slack-compatible incoming webhook URL",
    )
    webhook_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        label="Generic webhook URL (signed with HMAC-SHA256)",
    )
