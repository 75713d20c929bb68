"""Leave room on every page of the two tables the poll rewrites each cycle (the latest
values and the SLO states), so PostgreSQL can update their rows in place ("HOT": no new
index entries when no indexed column changes). A 10,000-service poll rewrites 130,000
such rows; with full pages every update also wrote each index. Other databases: nothing."""

from django.db import migrations

TABLES = ("metrics_metriclatest", "metrics_slostate")


def set_fillfactor(value):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in TABLES:
            schema_editor.execute(
                f"ALTER TABLE {schema_editor.quote_name(table)} SET (fillfactor = {int(value)})"
            )

    return run


class Migration(migrations.Migration):
    dependencies = [("metrics", "0003_samples_without_fk_constraints")]

    operations = [migrations.RunPython(set_fillfactor(50), set_fillfactor(100))]
