from django.db import migrations, models

import apps.accounts.models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_team_rolegrant"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(
                blank=True, help_text="refused after this time; empty: never expires", null=True
            ),
        ),
        # Existing tokens keep every scope (what they could do before scopes existed).
        migrations.AddField(
            model_name="apitoken",
            name="scopes",
            field=models.JSONField(
                default=apps.accounts.models._all_scopes,
                help_text="what the token may do, a list of: read, release:write, promote, rollback",
            ),
        ),
    ]
