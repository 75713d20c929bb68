from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0011_shadow_evaluation"),
    ]

    operations = [
        migrations.AddField(
            model_name="serviceenvironment",
            name="has_metrics",
            field=models.BooleanField(
                default=False, help_text="a latest value of a metric the fleet shows exists"
            ),
        ),
    ]
