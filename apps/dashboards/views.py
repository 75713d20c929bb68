"""On-call pages: the fleet overview, a service's dashboard, and the one-click rollback.
Thin: read through selectors, act through releases.services."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import DomainError, Forbidden
from apps.dashboards.charts import DEFAULT_RANGE, RANGES, dashboard_figures
from apps.dashboards.fleet import STATUS_ORDER, fleet_rows
from apps.metrics import selectors as metric_selectors
from apps.releases import permissions, services
from apps.releases.models import (
    Environment,
    Release,
    ReleaseKind,
    ReleaseState,
    Service,
    ServiceEnvironment,
)
from apps.releases.services import rollback_candidates

# How long after a rollback finishes its progress box stays on the dashboard.
ROLLBACK_PROGRESS_SHOWN_FOR = timedelta(minutes=10)
FLEET_COLUMNS = [
    ("status", "Status"),
    ("service", "Service"),
    ("environment", "Env"),
    ("", "Live"),
    ("", "Argo CD"),
    ("p95", "p95"),
    ("error_rate", "Errors"),
    ("cost", "Cost/day"),
    ("drift", "Drift"),
    ("waiting", "Approvals"),
]


@login_required
@require_GET
def fleet(request):
    """The landing page: every service in every environment, worst first."""
    params = {
        "query": request.GET.get("q", "").strip()[:63],
        "environment": request.GET.get("environment", "")[:63],
        "status": request.GET.get("status", "")
        if request.GET.get("status") in STATUS_ORDER
        else "",
        "sort": request.GET.get("sort", "status"),
    }
    rows = fleet_rows(**params)
    return render(
        request,
        "dashboards/fleet.html",
        {
            "nav": "fleet",
            "rows": rows,
            "params": params,
            "fleet_columns": FLEET_COLUMNS,
            "statuses": list(STATUS_ORDER),
            "environments": Environment.objects.order_by("order"),
            "stale": metric_selectors.stale_sources(),
        },
    )


def _target(service_name: str, environment_name: str):
    service = get_object_or_404(Service, name=service_name)
    environment = get_object_or_404(Environment, name=environment_name)
    target = ServiceEnvironment.objects.filter(service=service, environment=environment).first()
    return service, environment, target


def _rollback_context(user, service, environment) -> dict:
    live = (
        Release.objects.select_related("model_version")
        .filter(service=service, environment=environment, state=ReleaseState.LIVE)
        .first()
    )
    in_flight = (
        Release.objects.select_related("model_version", "requested_by")
        .filter(
            service=service,
            environment=environment,
            kind=ReleaseKind.ROLLBACK,
            state__in=[
                ReleaseState.PENDING_APPROVAL,
                ReleaseState.APPROVED,
                ReleaseState.DEPLOYING,
            ],
        )
        .first()
    )
    # Newest first: the first is the default target, as in rollback_default_target.
    candidates = (
        list(rollback_candidates(live).select_related("model_version")) if live is not None else []
    )
    return {
        "live": live,
        "rollback_in_flight": in_flight,
        "rollback_target": candidates[0] if candidates else None,
        "rollback_candidate_ids": {c.pk for c in candidates},
        "can_rollback": permissions.can_rollback(user),
    }


@login_required
@require_GET
def service_dashboard(request, service: str, environment: str):
    service, environment, target = _target(service, environment)
    range_key = request.GET.get("range", DEFAULT_RANGE)
    if range_key not in RANGES:
        range_key = DEFAULT_RANGE
    history = list(
        Release.objects.select_related("model_version", "requested_by")
        .filter(service=service, environment=environment)
        .order_by("-created_at", "-pk")[:25]
    )
    return render(
        request,
        "dashboards/service_dashboard.html",
        {
            "nav": "fleet",
            "service": service,
            "environment": environment,
            "target": target,
            "range_key": range_key,
            "ranges": list(RANGES),
            "figures": dashboard_figures(
                service=service,
                environment=environment,
                target=target,
                range_key=range_key,
                now=timezone.now(),
            ),
            "history": history,
            "stale": metric_selectors.stale_sources(),
            "latest": _kpis(
                metric_selectors.latest_by_target(service=service, environment=environment).get(
                    (service.pk, environment.pk), {}
                )
            ),
            **_rollback_context(request.user, service, environment),
        },
    )


KPI_METRICS = ("latency_p95_ms", "error_rate", "request_rate", "cost_per_day", "drift_psi")


def _kpis(values: dict) -> dict:
    """Every KPI named, None when unknown (templates read a missing key as "")."""
    return {name: values.get(name) for name in KPI_METRICS}


class RollbackForm(forms.Form):
    reason = forms.CharField(
        max_length=settings.RELEASE_TEXT_MAX_LENGTH,
        error_messages={"required": "Say why you roll back."},
    )
    expected_live = forms.IntegerField(min_value=1)
    target = forms.IntegerField(min_value=1, required=False)


@login_required
@require_POST
def rollback(request, service: str, environment: str):
    """One click (plus one confirmation): roll the live release back. Two clicks, two
    tabs or two people produce one rollback; the others are told which one is under way."""
    service, environment, _ = _target(service, environment)
    form = RollbackForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
        return redirect("dashboards:service", service=service.name, environment=environment.name)
    data = form.cleaned_data
    expected = Release.objects.filter(
        pk=data["expected_live"], service=service, environment=environment
    ).first()
    target = None
    if data.get("target"):
        target = Release.objects.filter(
            pk=data["target"], service=service, environment=environment
        ).first()
        if target is None:
            raise Http404("No such release of this service in this environment.")
    try:
        made = services.release_rollback(
            actor=request.user,
            service=service,
            environment=environment,
            reason=data["reason"],
            target=target,
            expected_live=expected,
        )
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Rollback #{made.pk} to {made.model_version} is under way.")
    return redirect("dashboards:service", service=service.name, environment=environment.name)


@login_required
@require_GET
def rollback_progress(request, service: str, environment: str):
    """The rollback's progress (committed, syncing, live), polled by the page."""
    service, environment, _ = _target(service, environment)
    recent = (
        Release.objects.select_related("model_version")
        .filter(service=service, environment=environment, kind=ReleaseKind.ROLLBACK)
        .order_by("-created_at", "-pk")
        .first()
    )
    moving = recent is not None and recent.state in (
        ReleaseState.PENDING_APPROVAL,
        ReleaseState.APPROVED,
        ReleaseState.DEPLOYING,
    )
    finished = recent and (recent.live_at or recent.ended_at)
    shown = moving or bool(finished and timezone.now() - finished < ROLLBACK_PROGRESS_SHOWN_FOR)
    response = render(
        request,
        "dashboards/_rollback_progress.html",
        {
            "service": service,
            "environment": environment,
            "rollback": recent,
            "moving": moving,
            "show": shown,
        },
    )
    if request.GET.get("was_moving") and not moving:
        # The rollback just finished: reload once so the history, the live release card and
        # the Rollback button show the new state too (htmx follows this header).
        response["HX-Refresh"] = "true"
    return response
