from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.audit.anchors import anchor_parse
from apps.audit.selectors import audit_anchors, audit_chain_report
from apps.audit.services import audit_chain_status_save


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain and hold it against the anchors written outside "
        "the database (checkpoint file, GitOps commit trailers); exit non-zero naming the "
        "first tampered row and the anchor that shows it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--anchor-file", type=Path, help="default: AUDIT_ANCHOR_FILE")
        parser.add_argument(
            "--git-dir",
            type=Path,
            help="a clone of the GitOps repo to read Audit-Anchor trailers from "
            "(default: AUDIT_ANCHOR_GIT_DIR)",
        )
        parser.add_argument(
            "--anchor",
            action="append",
            default=[],
            help="an anchor <id>:<hash>:<mac> taken from elsewhere (repeatable)",
        )

    def handle(self, *args, **options):
        anchors = audit_anchors(anchor_file=options["anchor_file"], git_dir=options["git_dir"])
        for text in options["anchor"]:
            given = anchor_parse(text, source="--anchor")
            if given is None:
                raise CommandError(f"not an anchor (<id>:<hash>:<mac>): {text!r}")
            anchors.append(given)
        report = audit_chain_report(anchors=anchors)
        audit_chain_status_save(report=report)
        if not report.intact:
            raise CommandError(report.message)
        self.stdout.write(self.style.SUCCESS(report.message))
