"""Anchors: the chain's head written somewhere a database user cannot rewrite.

The hash chain proves that the rows present were not edited and that none was removed
from the middle. It cannot tell that the newest rows were deleted, or all of them: the
shortened chain is still a valid chain. An anchor records "row <id> had hash <h>" outside
the database (a GitOps commit trailer, a line in an append-only file); a later chain that
lacks that row, or holds it with another hash, was cut or edited.

An anchor is ``<id>:<hash>:<mac>``; the MAC (HMAC-SHA256 with AUDIT_CHAIN_KEY, truncated
to 128 bits) stops whoever can write the anchor file from adding a false anchor, though
not from deleting lines: the GitOps remote's history is the stronger copy.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

TRAILER = "Audit-Anchor"
_MAC_HEX = 32


@dataclass(frozen=True)
class Anchor:
    event_id: int
    hash: str
    source: str  # where it was read: "file <path> line <n>", "git <sha>", "given"
    valid_mac: bool = True

    @property
    def text(self) -> str:
        return anchor_text(event_id=self.event_id, event_hash=self.hash)


def _mac(event_id: int, event_hash: str) -> str:
    key = settings.AUDIT_CHAIN_KEY.encode()
    body = f"audit-anchor:{event_id}:{event_hash}".encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()[:_MAC_HEX]


def anchor_text(*, event_id: int, event_hash: str) -> str:
    """The anchor of one row, as written in trailers and in the anchor file."""
    return f"{event_id}:{event_hash}:{_mac(event_id, event_hash)}"


def anchor_parse(text: str, *, source: str) -> Anchor | None:
    """Read ``<id>:<hash>:<mac>``; None when it is not shaped like an anchor at all.

    A well-shaped anchor with a wrong MAC is returned with ``valid_mac=False``: a forged
    or foreign anchor is something to report, not to skip silently.
    """
    parts = text.strip().split(":")
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[1]) != 64:
        return None
    event_id, event_hash, mac = int(parts[0]), parts[1], parts[2]
    valid = hmac.compare_digest(mac, _mac(event_id, event_hash))
    return Anchor(event_id=event_id, hash=event_hash, source=source, valid_mac=valid)


def anchor_file_path() -> Path:
    return Path(settings.AUDIT_ANCHOR_FILE)


def anchor_file_append(*, text: str, at: str, path: Path | None = None) -> int:
    """Append one line ``<time> <anchor>`` and return its line number; O_APPEND so
    concurrent writers never interleave inside a line, fsync so a crash right after a
    checkpoint does not lose it."""
    path = path or anchor_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, f"{at} {text}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    with path.open("rb") as written:
        return sum(1 for _ in written)


def anchors_from_file(path: Path | None = None) -> list[Anchor]:
    """Every anchor in the file, oldest first; an absent file holds none."""
    path = path or anchor_file_path()
    if not path.exists():
        return []
    found = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        _at, _, text = line.strip().rpartition(" ")
        anchor = anchor_parse(text, source=f"anchor file {path} line {number}")
        if anchor is not None:
            found.append(anchor)
    return found


def anchors_from_git(repo: Path, *, max_commits: int = 500) -> list[Anchor]:
    """``Audit-Anchor`` trailers of the newest commits in a clone (or bare repository).

    Plain ``git log``: the audit app imports no GitOps code, and an auditor can run the
    same command on their own clone of the remote.
    """
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        return []
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [  # noqa: S607 - git on PATH, as for the GitOps writer
            "git",
            "-C",
            str(repo),
            "log",
            f"-n{max_commits}",
            f"--format=%H%x00%(trailers:key={TRAILER},valueonly,separator=%x01)%x1e",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return []
    found = []
    for record in result.stdout.split("\x1e"):
        sha, _, values = record.strip().partition("\x00")
        for value in values.split("\x01"):
            anchor = anchor_parse(value, source=f"git commit {sha[:12]} of the GitOps repository")
            if anchor is not None:
                found.append(anchor)
    found.reverse()  # oldest first, like the file
    return found
