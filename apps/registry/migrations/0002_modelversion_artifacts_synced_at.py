from django.db import migrations, models
from django.db.models import F


def artifacts_read_with_details(apps, schema_editor):
    # Until now the details read included the artifacts: rows read then owe nothing.
    ModelVersion = apps.get_model("registry", "ModelVersion")
    ModelVersion.objects.filter(details_synced_at__isnull=False).update(
        artifacts_synced_at=F("details_synced_at")
    )


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="artifacts_synced_at",
            field=models.DateTimeField(
                blank=True, help_text="when the signature and score baseline were read", null=True
            ),
        ),
        migrations.RunPython(artifacts_read_with_details, migrations.RunPython.noop),
    ]
