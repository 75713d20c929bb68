"""Version keys of the live fragments (see apps/core/live.py): a few values from cheap
indexed queries that change whenever what a fragment shows changes, so an unchanged
poll is answered with 304 before anything is rendered.

- Every release transition, approval and rollback writes an audit event in the same
  transaction: the newest event id covers all of them in one index lookup.
- A metrics poll moves the newest sample time and the SLO judgements.
- Argo CD's word (sync, health, repository drift) lives on ServiceEnvironment; its
  status poll rewrites the row every 10 s, so the key takes the values, not the poll time.
- Texts such as "since 03:39 (4 min)" age by the minute: the minute is part of the key.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Count, Max, Q

from apps.audit.models import AuditEvent
from apps.core.live import minute_bucket
from apps.metrics.selectors import live_version, stale_sources
from apps.releases.models import Environment, Service, ServiceEnvironment


def _newest_audit_id() -> int | None:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()


def _stale_names() -> tuple:
    return tuple((s.source, s.consecutive_failures, s.last_error) for s in stale_sources())


def fleet_version() -> tuple:
    """The fleet page's key. Besides its fragment's 304s, the page's ranking of the whole
    fleet is kept per process under it (apps/dashboards/fleet.py): whatever may move a
    row must move the key (tests/dashboards/test_fleet_version.py)."""
    targets = ServiceEnvironment.objects.aggregate(
        health=Max("health_since"),
        drift=Max("drift_detected_at"),
        synced=Count("id", filter=Q(sync_status="Synced")),
        healthy=Count("id", filter=Q(health_status="Healthy")),
        drifted=Count("id", filter=~Q(drift_revision="")),
        measured=Count("id", filter=Q(has_metrics=True)),
        targets=Count("id"),
    )
    return (
        _newest_audit_id(),
        live_version(),
        tuple(sorted(targets.items())),
        _services_and_environments(),
        _stale_names(),
        minute_bucket(),
    )


def _services_and_environments() -> tuple:
    """How many services and environments there are and the newest of each, in one
    statement: one made without an audited action (a seed script, the ORM) still adds
    rows to the fleet; renames and team changes go through the audited admin."""
    quote = connection.ops.quote_name
    service = quote(Service._meta.db_table)
    environment = quote(Environment._meta.db_table)
    # Table names from the models, quoted; no value from a request.
    sql = (
        f"SELECT (SELECT COUNT(*) FROM {service}), (SELECT MAX(id) FROM {service}),"  # noqa: S608 # nosec B608
        f" (SELECT COUNT(*) FROM {environment}), (SELECT MAX(id) FROM {environment})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchone())


def dashboard_version(service: str, environment: str) -> tuple:
    target = (
        ServiceEnvironment.objects.filter(service__name=service, environment__name=environment)
        .values_list(
            "service_id",
            "environment_id",
            "sync_status",
            "health_status",
            "drift_revision",
            "slo_p95_latency_ms",
            "slo_error_rate",
            "slo_cost_per_day",
            "slo_drift_psi",
        )
        .first()
    )
    metrics = live_version(service_id=target[0], environment_id=target[1]) if target else ()
    return (_newest_audit_id(), target, metrics, _stale_names(), minute_bucket())


def inbox_version() -> tuple:
    return (_newest_audit_id(), minute_bucket())
