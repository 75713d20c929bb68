"""Registry pages: the "Refresh from MLflow" button."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.accounts.roles import Role, has_role
from apps.registry.client import RegistryClient
from apps.registry.services import registry_sync


@login_required
@require_POST
def sync_now(request, registered_model: str):
    """Re-read one registered model from MLflow now, then go back where the user was.

    Synchronous, so the page they return to shows the result; bounded by twice
    MLFLOW_TIMEOUT_SECONDS in total, so a slow MLflow costs a short wait and a message,
    never a hung request.
    """
    if not has_role(request.user, Role.ML_ENGINEER, Role.ADMIN):
        raise PermissionDenied("Only ML engineers and admins can refresh from MLflow.")
    client = RegistryClient(budget_seconds=settings.MLFLOW_TIMEOUT_SECONDS * 2)
    result = registry_sync(
        client=client, model_names=[registered_model], force=True, actor=request.user
    )
    if not result.ok or result.models_missing:
        messages.warning(request, result.summary())
    else:
        messages.success(request, f"{registered_model}: {result.summary()}")
    target = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/"
    return redirect(target)
