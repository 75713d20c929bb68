"""A person's own notification settings page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.core.errors import DomainError
from apps.notifications.forms import PreferenceForm
from apps.notifications.selectors import preference_for
from apps.notifications.services import preference_update


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request):
    preference = preference_for(request.user)
    status = 200
    if request.method == "POST":
        form = PreferenceForm(request.POST)
        if form.is_valid():
            try:
                preference_update(actor=request.user, **form.cleaned_data)
            except DomainError as exc:
                field = next((f for f in exc.field_errors if f in form.fields), None)
                form.add_error(field, exc.message)
            else:
                messages.success(request, "Your notification settings are saved.")
                return redirect("notifications:settings")
        status = 400
    else:
        form = PreferenceForm(
            initial={
                "events": preference.events,
                # No address on the account: e-mail cannot be on (saving would refuse it).
                "email": preference.email and bool(request.user.email),
                "slack_url": preference.slack_url,
                "webhook_url": preference.webhook_url,
            }
        )
    return render(
        request,
        "notifications/settings.html",
        {"form": form, "nav": "notifications", "address": request.user.email},
        status=status,
    )
