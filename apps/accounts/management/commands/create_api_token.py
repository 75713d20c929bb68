import re
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.accounts.models import ALL_SCOPES
from apps.accounts.services import api_token_create

_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``."""
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise CommandError(
            f"--expires-in {text!r}: give a positive number and a unit, e.g. 30m, 12h, 90d, 2w"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = "Create an API token for a user and print it once (it is stored hashed)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="what will use the token")
        parser.add_argument(
            "--expires-in",
            help="refuse the token after this long: 30m, 12h, 90d, 2w (default: never)",
        )
        parser.add_argument(
            "--scope",
            action="append",
            choices=ALL_SCOPES,
            help="what the token may do; repeat for several (default: all of them)",
        )

    def handle(self, *args, username, name, expires_in=None, scope=None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        expires_at = timezone.now() + parse_duration(expires_in) if expires_in else None
        _, raw = api_token_create(user=user, name=name, scopes=scope, expires_at=expires_at)
        self.stdout.write(raw)
