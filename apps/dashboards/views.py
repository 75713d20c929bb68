"""On-call pages: the fleet overview, a service's dashboard, and the one-click rollback.
Thin: read through selectors, act through releases.services."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import DomainError, Forbidden
from apps.core.live import live_fragment, poll_seconds
from apps.dashboards.charts import (
    DEFAULT_RANGE,
    RANGES,
    dashboard_figures,
    marker_hover,
    marker_label,
)
from apps.dashboards.fleet import STATUS_ORDER, fleet_page
from apps.dashboards.slo_text import (
    KPI_LABELLED,
    breach_summary,
    first_breach_start,
    metric_cell,
    since_text,
)
from apps.dashboards.versions import dashboard_version, fleet_version, inbox_version
from apps.metrics import selectors as metric_selectors
from apps.metrics.catalog import SLO_METRICS
from apps.releases import permissions, services
from apps.releases import selectors as release_selectors
from apps.releases.models import (
    Environment,
    Release,
    ReleaseKind,
    ReleaseState,
    Service,
    ServiceEnvironment,
)
from apps.releases.services import rollback_candidates
from apps.releases.services.rollback import ROLLBACK_UNDER_WAY

# How long after a rollback went live its "succeeded" box stays: long enough to read,
# and it goes at once when a newer release replaces the rollback.
ROLLBACK_SUCCESS_SHOWN_FOR = timedelta(minutes=2)
# Release columns no on-call page shows: the rendered manifests and configuration (a few
# KiB of JSON a row, decoded for nothing).
UNSHOWN_RELEASE_FIELDS = ("rendered_files", "config", "config_overrides")
# Releases in a dashboard's history table, newest first.
HISTORY_ROWS = 25
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


def _page_number(text: str) -> int:
    """The asked-for page; anything but a positive number is page 1 (a link typed by
    hand should show the fleet, not an error)."""
    return int(text) if text.isdigit() and 0 < len(text) < 7 else 1


def _fleet_params(request) -> dict:
    return {
        "query": request.GET.get("q", "").strip()[:63],
        "team": request.GET.get("team", "").strip()[:63],
        "environment": request.GET.get("environment", "")[:63],
        "status": request.GET.get("status", "")
        if request.GET.get("status") in STATUS_ORDER
        else "",
        "sort": request.GET.get("sort", "status"),
    }


def _fleet_url(params: dict, **changes) -> str:
    """``?…`` for the fleet with ``params`` and ``changes``, empty values left out, so
    a sort link keeps the filters and a filter or sort starts again at page 1."""
    names = {"query": "q", "team": "team", "environment": "environment", "status": "status"}
    merged = {**params, **changes}
    query = QueryDict(mutable=True)
    for key, name in names.items():
        if merged.get(key):
            query[name] = merged[key]
    if merged.get("sort") and merged["sort"] != "status":
        query["sort"] = merged["sort"]
    if merged.get("page", 1) != 1:
        query["page"] = str(merged["page"])
    return f"?{query.urlencode()}" if query else "?"


def _fleet_context(request, *, version: tuple) -> dict:
    params = _fleet_params(request)
    can_rollback = permissions.can_rollback(request.user)
    page = fleet_page(
        **params,
        page=_page_number(request.GET.get("page", "")),
        with_rollback=can_rollback,
        rollback_team_ids=permissions.rollback_team_ids(request.user),
        version=version,
    )
    # Filters and sort keep each other; changing either goes back to page 1.
    columns = [
        (key, label, _fleet_url(params, sort=key) if key else "") for key, label in FLEET_COLUMNS
    ]
    status_links = [
        (name, page.counts[name], _fleet_url(params, status=name))
        for name in STATUS_ORDER
        if page.counts.get(name)
    ]
    pages = {
        "first": _fleet_url(params, page=1) if page.number > 2 else "",
        "previous": _fleet_url(params, page=page.number - 1) if page.number > 1 else "",
        "next": _fleet_url(params, page=page.number + 1) if page.number < page.pages else "",
        "last": _fleet_url(params, page=page.pages) if page.number < page.pages - 1 else "",
    }
    return {
        "nav": "fleet",
        "page": page,
        "rows": page.rows,
        "params": params,
        "fleet_columns": columns,
        "status_links": status_links,
        "all_statuses_url": _fleet_url(params, status=""),
        "page_links": pages,
        "statuses": list(STATUS_ORDER),
        "environments": page.environments,
        "stale": metric_selectors.stale_sources(),
        "can_rollback": can_rollback,
        "poll_seconds": poll_seconds(),
    }


@login_required
@require_GET
def fleet(request):
    """The landing page: every service in every environment, worst first, a page of
    rows at a time. The table below the filters is the live fragment (``fleet_live``,
    the same query string, so each page polls its own rows). The version key is read
    fresh here (the page follows an action at once); the ranking behind it is shared."""
    return render(
        request, "dashboards/fleet.html", _fleet_context(request, version=fleet_version())
    )


@login_required
@require_GET
@live_fragment(fleet_version)
def fleet_live(request):
    """The fleet table alone, for the page's poll; 304 when nothing it shows changed.
    A 200 ranks under the key its ETag names (at most ``shared_seconds()`` old, like the
    304s)."""
    return render(
        request,
        "dashboards/_fleet_table.html",
        _fleet_context(request, version=request.live_version),
    )


def _target(service_name: str, environment_name: str):
    """The service, the environment and their target row in one query; two more (and a
    target of None) where nothing was ever released, or a 404 naming neither."""
    target = (
        ServiceEnvironment.objects.select_related("service__owner_team", "environment")
        .filter(service__name=service_name, environment__name=environment_name)
        .first()
    )
    if target is not None:
        return target.service, target.environment, target
    service = get_object_or_404(Service.objects.select_related("owner_team"), name=service_name)
    environment = get_object_or_404(Environment, name=environment_name)
    return service, environment, None


def _rollback_context(user, service, environment, *, history, now) -> dict:
    live = next((r for r in history if r.state == ReleaseState.LIVE), None)
    if live is None:
        live = (
            Release.objects.select_related("model_version")
            .defer(*UNSHOWN_RELEASE_FIELDS)
            .filter(service=service, environment=environment, state=ReleaseState.LIVE)
            .first()
        )
    in_flight = next(
        (r for r in history if r.kind == ReleaseKind.ROLLBACK and r.state in ROLLBACK_UNDER_WAY),
        None,
    )
    # Newest first: the first is the default target, as in rollback_default_target.
    candidates = (
        list(
            rollback_candidates(live).select_related("model_version").defer(*UNSHOWN_RELEASE_FIELDS)
        )
        if live is not None
        else []
    )
    return {
        "live": live,
        "rollback_in_flight": in_flight,
        "rollback_target": candidates[0] if candidates else None,
        "rollback_candidate_ids": {c.pk for c in candidates},
        "can_rollback": permissions.can_rollback(user, service),
        **_rollback_box(history, now=now),
    }


def _rollback_box(history, *, now) -> dict:
    """The rollback progress box: shown while the newest rollback of the target is under
    way, has failed, or went live in the last ROLLBACK_SUCCESS_SHOWN_FOR; gone as soon as
    a newer release exists (it no longer says what runs)."""
    newest = history[0] if history else None
    box = {"rollback": None, "moving": False, "show": False, "box_state": ""}
    if newest is None or newest.kind != ReleaseKind.ROLLBACK:
        return box
    moving = newest.state in ROLLBACK_UNDER_WAY
    if moving:
        state = "in_progress"
    elif newest.state == ReleaseState.LIVE:
        state = "succeeded"
    elif newest.state == ReleaseState.FAILED:
        state = "failed"
    else:
        state = "superseded"  # cancelled, or replaced before the page caught up
    finished = newest.live_at or newest.ended_at
    shown = (
        moving
        or state == "failed"
        or (state == "succeeded" and now - finished < ROLLBACK_SUCCESS_SHOWN_FOR)
    )
    return {"rollback": newest, "moving": moving, "show": shown, "box_state": state}


def _range_key(request, *, breaching: bool) -> str:
    """The asked-for range; without one, the breach (from 15 minutes before it started)
    while an SLO is breached, else the last hour."""
    asked = request.GET.get("range")
    if asked in RANGES or (asked == "breach" and breaching):
        return asked
    return "breach" if breaching else DEFAULT_RANGE


def _dashboard_context(request, service_name: str, environment_name: str) -> dict:
    service, environment, target = _target(service_name, environment_name)
    now = timezone.now()
    # This target's rows only: the fleet-wide reads grow with the fleet.
    slo = (
        target.slo()
        if target is not None
        else {key: getattr(service, f"slo_{key}", None) for key in SLO_METRICS}
    )
    breaches, statuses = metric_selectors.target_slo(
        service=service,
        environment=environment,
        thresholds=slo if target is not None else {},
        now=now,
    )
    latest = metric_selectors.latest_by_target(service=service, environment=environment).get(
        (service.pk, environment.pk), {}
    )
    history = list(
        Release.objects.select_related("model_version", "requested_by")
        .defer(*UNSHOWN_RELEASE_FIELDS)
        .filter(service=service, environment=environment)
        .order_by("-created_at", "-pk")[:HISTORY_ROWS]
    )
    return {
        "nav": "fleet",
        "service": service,
        "environment": environment,
        "target": target,
        "range_key": _range_key(request, breaching=bool(breaches)),
        "ranges": (["breach"] if breaches else []) + list(RANGES),
        "history": history,
        # Every release of the target, when the history shows them all: the charts'
        # markers are found among them instead of read again.
        "all_releases": history if len(history) < HISTORY_ROWS else None,
        "stale": metric_selectors.stale_sources(),
        "latest": _kpis(latest),
        "kpi_cells": [
            metric_cell(
                name,
                latest.get(name)
                if latest.get(name) is not None or name not in breaches
                else breaches[name].value,
                state="breach" if name in breaches else statuses.get(name),
                threshold=(slo.get(key) if key else None)
                or (breaches[name].threshold if name in breaches else None),
                since=breaches[name].since if name in breaches else None,
                now=now,
            )
            for name, key in KPI_LABELLED
        ],
        "breaches": breaches,
        "breach_since": since_text(first_breach_start(breaches), now=now),
        "breach_text": breach_summary(breaches, now=now),
        "poll_seconds": poll_seconds(),
        "now": now,
        **_rollback_context(request.user, service, environment, history=history, now=now),
    }


@login_required
@require_GET
def service_dashboard(request, service: str, environment: str):
    context = _dashboard_context(request, service, environment)
    figures, markers = dashboard_figures(
        service=context["service"],
        environment=context["environment"],
        target=context["target"],
        range_key=context["range_key"],
        now=context["now"],
        breach_started=first_breach_start(context["breaches"]),
        releases=context["all_releases"],
    )
    context["figures"] = figures
    context["markers"] = [(marker_label(r), marker_hover(r)) for r in markers]
    return render(request, "dashboards/service_dashboard.html", context)


@login_required
@require_GET
@live_fragment(dashboard_version)
def service_dashboard_live(request, service: str, environment: str):
    """Everything on the dashboard but the charts (status, numbers, rollback box,
    history), for the page's poll; 304 when nothing it shows changed."""
    context = _dashboard_context(request, service, environment)
    return render(request, "dashboards/_dashboard_live.html", context)


@login_required
@require_GET
@live_fragment(dashboard_version)
def service_dashboard_charts(request, service: str, environment: str):
    """The charts' figures as JSON; the page updates them in place (Plotly.react)."""
    context = _dashboard_context(request, service, environment)
    figures, markers = dashboard_figures(
        service=context["service"],
        environment=context["environment"],
        target=context["target"],
        range_key=context["range_key"],
        now=context["now"],
        breach_started=first_breach_start(context["breaches"]),
        releases=context["all_releases"],
    )
    return JsonResponse(
        {
            "charts": {f["element_id"]: f["figure"] for f in figures},
            "markers": [[marker_label(r), marker_hover(r)] for r in markers],
        }
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
@live_fragment(dashboard_version)
def rollback_progress(request, service: str, environment: str):
    """The rollback's progress box alone (committed, syncing, live). The dashboard shows
    it inside its live fragment; this is for pages that show only the box."""
    service, environment, _ = _target(service, environment)
    history = list(
        Release.objects.select_related("model_version")
        .filter(service=service, environment=environment)
        .order_by("-created_at", "-pk")[:1]
    )
    return render(
        request,
        "dashboards/_rollback_progress.html",
        {
            "service": service,
            "environment": environment,
            **_rollback_box(history, now=timezone.now()),
        },
    )


@login_required
@require_GET
@live_fragment(inbox_version)
def inbox_live(request):
    """The "Waiting for me" table alone, for the inbox page's poll."""
    return render(
        request,
        "releases/_inbox_table.html",
        {
            "waiting": release_selectors.inbox_for(request.user),
            "is_reviewer": permissions.can_review(request.user),
        },
    )
