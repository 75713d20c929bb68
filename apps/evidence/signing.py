"""Signing and verifying evidence packs with Ed25519 (the ``cryptography`` package).

The signed bytes are the canonical JSON of the pack (sorted keys, no whitespace), so any
tool that re-serialises the same data the same way can check it. The pack also lists a
SHA-256 per section, inside what is signed: when the signature fails, the section whose
digest no longer matches names what was changed.

The trusted key is the verifier's, never the one written in the file: a public key in the
envelope only says which key the signer claims, so a pack re-signed with another key fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

FORMAT = "slipway-evidence/1"


class EvidenceKeyError(Exception):
    """No usable signing or verification key."""


def canonical_bytes(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def section_digests(sections: dict) -> dict[str, str]:
    return {
        name: hashlib.sha256(canonical_bytes(body)).hexdigest() for name, body in sections.items()
    }


def _private_key_from_text(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise EvidenceKeyError(f"EVIDENCE_SIGNING_KEY is not an Ed25519 key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceKeyError("EVIDENCE_SIGNING_KEY is a PEM key, but not an Ed25519 one")
    return key


def signing_key() -> Ed25519PrivateKey:
    """The configured key (EVIDENCE_SIGNING_KEY or _FILE: PEM, or the raw 32-byte seed in
    base64). In demo mode without one, a key is made once under the var directory so the
    demo can sign; anywhere else a missing key is an error, never a silent throwaway key."""
    if settings.EVIDENCE_SIGNING_KEY:
        return _private_key_from_text(settings.EVIDENCE_SIGNING_KEY)
    if not settings.DEMO_MODE:
        raise EvidenceKeyError(
            "No evidence signing key: set EVIDENCE_SIGNING_KEY or EVIDENCE_SIGNING_KEY_FILE"
        )
    path = Path(settings.VAR_DIR) / "evidence-signing-key.pem"
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pem)
        path.chmod(0o600)
    return _private_key_from_text(path.read_text())


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """A verification key: PEM (public or private), or raw 32 bytes in base64."""
    text = text.strip()
    try:
        if "PRIVATE KEY" in text:
            return _private_key_from_text(text).public_key()
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise EvidenceKeyError("the PEM public key is not an Ed25519 key")
            return key
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise EvidenceKeyError(f"not an Ed25519 public key: {exc}") from exc


def sign_pack(pack: dict, *, key: Ed25519PrivateKey | None = None) -> dict:
    """The envelope: the pack (with its section digests) and the signature over it."""
    key = key or signing_key()
    signed = {**pack, "section_digests": section_digests(pack["sections"])}
    signature = key.sign(canonical_bytes(signed))
    return {
        "format": FORMAT,
        "pack": signed,
        "signature": {
            "algorithm": "Ed25519",
            "public_key": public_key_text(key.public_key()),
            "value": base64.b64encode(signature).decode(),
        },
    }


def verify_envelope(envelope: dict, *, public_key: Ed25519PublicKey) -> list[str]:
    """What is wrong with the envelope; an empty list when the signature verifies."""
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        return [f"not a {FORMAT} file"]
    pack = envelope.get("pack")
    signature = envelope.get("signature") or {}
    if not isinstance(pack, dict) or not isinstance(pack.get("sections"), dict):
        return ["the pack or its sections are missing"]
    problems = []
    if signature.get("public_key") != public_key_text(public_key):
        problems.append("signed with another key than the one trusted here")
    try:
        public_key.verify(base64.b64decode(signature.get("value", "")), canonical_bytes(pack))
    except (InvalidSignature, ValueError):
        problems.append("the signature does not match the content")
    if not problems:
        return []
    listed = pack.get("section_digests") or {}
    actual = section_digests(pack["sections"])
    for name in sorted(set(listed) | set(actual)):
        if name not in actual:
            problems.append(f"section {name!r} was removed")
        elif name not in listed:
            problems.append(f"section {name!r} was added")
        elif listed[name] != actual[name]:
            problems.append(f"section {name!r} was changed")
    if not any(p.startswith("section") for p in problems) and not problems[0].startswith(
        "signed with"
    ):
        problems.append("the header (release, generated_at or section digests) was changed")
    return problems
