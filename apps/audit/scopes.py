"""Which audit rows belong to a service.

Audit rows name their target (``release:42``, ``model_version:7``), not the service, and
the audit app sits below the apps that know which release or model version belongs to
which service. Those apps register a scope function here (from their ``ready()``); the
audit page ORs the scopes together to filter by service name.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q

ServiceScope = Callable[[str], Q]
_scopes: dict[str, ServiceScope] = {}


def register_service_scope(name: str, scope: ServiceScope) -> None:
    """Register ``scope(service_name) -> Q`` over AuditEvent under ``name`` (idempotent)."""
    _scopes[name] = scope


def service_scope(service: str) -> Q:
    """Rows about ``service``: the OR of every registered scope. The scopes return lazy
    subqueries, so the filter stays part of one query."""
    q = Q(pk__in=[])  # no scope registered: nothing belongs to any service
    for scope in _scopes.values():
        q |= scope(service)
    return q
