"""Browser forms. They collect input; the service functions decide and enforce."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings

from apps.registry.models import ModelVersion
from apps.releases.models import Environment, Release, Service


def _preselect_only_choice(form: forms.Form, name: str) -> None:
    """A required select with a single choice starts on it, without a "---------" line
    to pick first (one small query: at most two rows are read)."""
    field = form.fields[name]
    only = list(field.queryset[:2])
    if len(only) != 1:
        return
    field.empty_label = None
    if not form.is_bound and form.initial.get(name) is None:
        form.initial[name] = getattr(only[0], field.to_field_name or "pk")


class ReleaseCreateForm(forms.Form):
    service = forms.ModelChoiceField(
        queryset=Service.objects.order_by("name"), to_field_name="name"
    )
    environment = forms.ModelChoiceField(
        queryset=Environment.objects.filter(promotes_from__isnull=True).order_by("order"),
        to_field_name="name",
        help_text="Environments reached by promotion (e.g. prod) are not offered: promote a "
        "release that is live in the environment before it.",
    )
    model_version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(),
        help_text="Only versions that are READY in MLflow for the service's model are offered.",
    )
    config_overrides = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        help_text='Optional JSON merged over the service defaults, e.g. {"replicas": {"min": 3}}.',
    )
    reason = forms.CharField(
        max_length=settings.RELEASE_TEXT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why this release: what changed in the model, what reviewers should look at.",
    )

    def __init__(self, *args, versions=None, services=None, **kwargs):
        super().__init__(*args, **kwargs)
        if services is not None:
            # Only the services of the person's teams: another team's is not offered,
            # and posting its name is "not one of the available choices".
            self.fields["service"].queryset = services
        self.fields["model_version"].queryset = (
            versions if versions is not None else ModelVersion.objects.none()
        )
        self.fields["model_version"].label_from_instance = lambda mv: (
            f"v{mv.version} · run {mv.run_id[:8] or '-'}"
            + (f" · {mv.description[:60]}" if mv.description else "")
        )
        for name in ("environment", "model_version"):
            _preselect_only_choice(self, name)

    def clean_config_overrides(self):
        raw = self.cleaned_data["config_overrides"].strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Give a JSON object, e.g. {"replicas": {"min": 3}}.')
        return value


class DecisionForm(forms.Form):
    """Approve or reject. The digest is the one the reviewer had on screen."""

    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    role = forms.CharField(required=False)
    comment = forms.CharField(
        required=False,
        max_length=settings.RELEASE_TEXT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    digest = forms.CharField(max_length=64)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=settings.RELEASE_TEXT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class PromoteForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), to_field_name="name")
    reason = forms.CharField(
        required=False,
        max_length=settings.RELEASE_TEXT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    # On-call's or an admin's reason to promote through a freeze (break glass).
    break_glass = forms.CharField(
        required=False,
        max_length=settings.RELEASE_TEXT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ReleaseFilterForm(forms.Form):
    service = forms.CharField(required=False, max_length=63)
    environment = forms.CharField(required=False, max_length=63)
    team = forms.CharField(required=False, max_length=63)
    state = forms.ChoiceField(
        required=False, choices=[("", "any state"), *Release._meta.get_field("state").choices]
    )
    kind = forms.ChoiceField(
        required=False, choices=[("", "any kind"), *Release._meta.get_field("kind").choices]
    )
