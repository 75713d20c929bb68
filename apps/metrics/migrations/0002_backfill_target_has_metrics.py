"""Set ServiceEnvironment.has_metrics where the latest values already hold a metric the
fleet shows: from now on the metrics poll keeps the flag."""

from django.db import migrations
from django.db.models import Exists, OuterRef

# metrics.catalog.FLEET_METRICS when this was written (a migration must not follow the code).
FLEET_METRICS = ("latency_p95_ms", "error_rate", "cost_per_day", "drift_psi")


def backfill(apps, schema_editor):
    target = apps.get_model("releases", "ServiceEnvironment")
    latest = apps.get_model("metrics", "MetricLatest")
    target.objects.filter(
        Exists(
            latest.objects.filter(
                service_id=OuterRef("service_id"),
                environment_id=OuterRef("environment_id"),
                metric__in=FLEET_METRICS,
            )
        )
    ).update(has_metrics=True)


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0001_initial"),
        ("releases", "0012_target_has_metrics"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
