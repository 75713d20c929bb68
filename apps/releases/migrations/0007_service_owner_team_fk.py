"""Service.owner_team: free text -> a foreign key to accounts.Team.

Each distinct text becomes a team (its slug made a DNS-1123 label, its text kept as the
display name), and every service points at its team. Environment gains the separation-
of-duties switch (empty: on for production environments).
"""

import re

import django.db.models.deletion
from django.db import migrations, models


def team_slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", text.strip().lower())
    slug = re.sub(r"-{2,}", "-", slug).strip("-")[:50].strip("-")
    return slug or "unassigned"


def teams_from_text(apps, schema_editor):
    Service = apps.get_model("releases", "Service")
    Team = apps.get_model("accounts", "Team")
    teams = {}
    for text in Service.objects.order_by().values_list("owner_team", flat=True).distinct():
        slug = team_slug(text)
        if slug not in teams:
            teams[slug] = Team.objects.get_or_create(slug=slug, defaults={"name": text.strip()})[0]
        Service.objects.filter(owner_team=text).update(owner_team_ref=teams[slug])


def text_from_teams(apps, schema_editor):
    Service = apps.get_model("releases", "Service")
    for service in Service.objects.select_related("owner_team_ref"):
        Service.objects.filter(pk=service.pk).update(owner_team=service.owner_team_ref.slug)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_team_rolegrant"),
        ("releases", "0006_approval_evidence"),
    ]

    operations = [
        migrations.AddField(
            model_name="service",
            name="owner_team_ref",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="accounts.team",
            ),
        ),
        migrations.RunPython(teams_from_text, text_from_teams),
        migrations.AddField(
            model_name="environment",
            name="trainer_may_not_approve",
            field=models.BooleanField(
                blank=True,
                null=True,
                help_text="separation of duties: the person who trained the model (the MLflow "
                "run's user) cannot approve its release here. Empty: on for production "
                "environments",
            ),
        ),
    ]
