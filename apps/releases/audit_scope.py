"""The audit log's "service" filter: which audit rows are about one service."""

from __future__ import annotations

from django.db.models import CharField, Q
from django.db.models.functions import Cast

from apps.registry.models import ModelVersion
from apps.releases.models import Release, Service


def _ids(queryset):
    # Audit rows store target ids as text; compare text with text inside one query.
    return queryset.annotate(target=Cast("pk", CharField())).values("target")


def service_audit_scope(name: str) -> Q:
    """Rows whose target is the service, one of its releases, or a version of its model."""
    services = Service.objects.filter(name=name)
    return (
        Q(target_type="service", target_id__in=_ids(services))
        | Q(target_type="release", target_id__in=_ids(Release.objects.filter(service__name=name)))
        | Q(
            target_type="model_version",
            target_id__in=_ids(
                ModelVersion.objects.filter(name__in=services.values("registered_model"))
            ),
        )
    )
