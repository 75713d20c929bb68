from datetime import UTC, datetime, time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.evidence.services import evidence_export
from apps.evidence.signing import EvidenceKeyError


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"not an ISO date or time: {text!r}") from exc
    if len(text) == 10:  # a plain date means the start of that day
        value = datetime.combine(value.date(), time.min)
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Write the signed evidence packs of every release created in [--since, --until) to a zip."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="ISO date or time (UTC if no zone)")
        parser.add_argument("--until", required=True, help="ISO date or time, exclusive")
        parser.add_argument("--out", type=Path, required=True, help="the zip file to write")

    def handle(self, *args, **options):
        since, until = _moment(options["since"]), _moment(options["until"])
        if since >= until:
            raise CommandError("--since must be before --until")
        try:
            count = evidence_export(since=since, until=until, path=options["out"])
        except EvidenceKeyError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"{count} evidence packs written to {options['out']}"))
