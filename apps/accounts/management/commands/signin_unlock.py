from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.roles import Role, has_role
from apps.accounts.signin import signin_lockout_clear


class Command(BaseCommand):
    help = (
        "Unlock sign-in for a username (from every address, or one with --ip), audited as "
        "the admin named by --by. django-axes' own axes_reset commands are not audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="the username that was locked out")
        parser.add_argument("--ip", help="only the lockout from this address")
        parser.add_argument("--by", required=True, help="the admin doing it (for the audit log)")

    def handle(self, *args, username, ip=None, by, **options):
        admin = get_user_model().objects.filter(username=by).first()
        if admin is None or not has_role(admin, Role.ADMIN):
            raise CommandError(f"--by {by!r} is not a Slipway admin")
        attempts = AccessAttempt.objects.filter(username=username)
        if ip:
            attempts = attempts.filter(ip_address=ip)
        cleared = signin_lockout_clear(attempts=list(attempts), cleared_by=admin)
        where = f" from {ip}" if ip else ""
        self.stdout.write(f"cleared {cleared} failed sign-in record(s) for {username!r}{where}")
