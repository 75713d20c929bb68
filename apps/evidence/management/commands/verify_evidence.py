from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.evidence.signing import (
    EvidenceKeyError,
    public_key_from_text,
    signing_key,
    verify_envelope,
)
from apps.evidence.verify import envelope_from_text


class Command(BaseCommand):
    help = (
        "Verify a signed evidence pack (JSON or its HTML rendering); exit non-zero saying "
        "what failed. The trusted key is --public-key, else the configured signing key."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--public-key",
            type=Path,
            help="file with the Ed25519 public key (PEM, or raw 32 bytes in base64)",
        )

    def handle(self, *args, **options):
        try:
            if options["public_key"]:
                trusted = public_key_from_text(options["public_key"].read_text())
            else:
                trusted = signing_key().public_key()
            envelope = envelope_from_text(options["file"].read_text())
        except (OSError, ValueError, EvidenceKeyError) as exc:
            raise CommandError(f"{options['file']}: cannot verify: {exc}") from exc
        problems = verify_envelope(envelope, public_key=trusted)
        if problems:
            raise CommandError(f"{options['file']}: NOT VERIFIED: " + "; ".join(problems))
        pack = envelope["pack"]
        self.stdout.write(
            self.style.SUCCESS(
                f"{options['file']}: verified: release {pack['release_id']} "
                f"({pack['release_uid']}), generated {pack['generated_at']}"
            )
        )
