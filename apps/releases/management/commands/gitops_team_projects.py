"""Print (or write) one Argo CD AppProject per team, for the GitOps repository's argocd/.

    manage.py gitops_team_projects --base argocd/appproject.yaml --output argocd/projects.yaml

The base is the repository's own ``argocd/appproject.yaml`` (the allowed kinds); the
source repository defaults to the base's first ``sourceRepos`` entry, the destinations
are the environments' namespaces. Run it again when a team or an environment is added,
commit the file and apply it with the rest of ``argocd/``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Team
from apps.gitops.errors import UnsafePathError
from apps.gitops.projects import IN_CLUSTER, TeamProject, team_projects_yaml
from apps.releases.models import Environment

DEFAULT_BASE = Path(settings.BASE_DIR) / "gitops-repo-template" / "argocd" / "appproject.yaml"


class Command(BaseCommand):
    help = "Generate one Argo CD AppProject per team (multi-document YAML)."

    def add_arguments(self, parser):
        parser.add_argument("--base", type=Path, default=DEFAULT_BASE, help="base AppProject")
        parser.add_argument("--repo-url", default="", help="the GitOps repository Argo CD reads")
        parser.add_argument("--server", default=IN_CLUSTER, help="destination cluster API")
        parser.add_argument("--output", type=Path, help="file to write (default: stdout)")

    def handle(self, *args, base: Path, repo_url: str, server: str, output: Path | None, **kw):
        try:
            project = yaml.safe_load(base.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CommandError(f"cannot read the base AppProject {base}: {exc}") from exc
        if not isinstance(project, dict) or project.get("kind") != "AppProject":
            raise CommandError(f"{base} is not an AppProject")
        repo_url = repo_url or next(iter(project.get("spec", {}).get("sourceRepos") or []), "")
        teams = [TeamProject(slug=t.slug, display_name=t.display_name) for t in Team.objects.all()]
        if not teams:
            raise CommandError("no teams yet: create them in the admin (Accounts > Teams)")
        namespaces = list(Environment.objects.values_list("name", flat=True))
        try:
            text = team_projects_yaml(
                project, teams=teams, repo_url=repo_url, namespaces=namespaces, server=server
            )
        except (ValueError, UnsafePathError) as exc:
            raise CommandError(str(exc)) from exc
        if output is None:
            self.stdout.write(text, ending="")
        else:
            output.write_text(text)
            self.stdout.write(f"wrote {len(teams)} AppProjects to {output}")
