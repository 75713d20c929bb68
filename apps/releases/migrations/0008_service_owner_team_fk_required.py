"""Second step of 0007: the text column goes and the team reference takes its name.
Its own migration (own transaction): PostgreSQL refuses to alter a table with the
pending foreign-key checks the data step leaves behind."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0007_service_owner_team_fk"),
    ]

    operations = [
        # A default for the text column only so that migrating backwards can add it again
        # to a table with rows (0007's reverse step then fills it from the teams).
        migrations.AlterField(
            model_name="service",
            name="owner_team",
            field=models.CharField(max_length=100, default=""),
        ),
        migrations.RemoveField(model_name="service", name="owner_team"),
        migrations.RenameField(
            model_name="service", old_name="owner_team_ref", new_name="owner_team"
        ),
        migrations.AlterField(
            model_name="service",
            name="owner_team",
            field=models.ForeignKey(
                help_text="the team whose people create, promote, approve and roll back its "
                "releases",
                on_delete=django.db.models.deletion.PROTECT,
                related_name="services",
                to="accounts.team",
            ),
        ),
    ]
