from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    """Signed evidence packs per release. Top of the import order next to dashboards: it
    reads releases, registry, metrics and audit, and nothing imports it."""

    name = "apps.evidence"
    label = "evidence"
    verbose_name = "Evidence packs"
