"""The unified diff reviewers read before approving: the remote's files vs this release's."""

from __future__ import annotations

import difflib
from collections.abc import Mapping


def unified_diff(current: Mapping[str, str], proposed: Mapping[str, str], *, folder: str) -> str:
    """A git-style unified diff of a release folder, file by file in name order.

    ``current`` is what the remote holds now (empty for a first deploy), ``proposed``
    what the release will write. Files only in ``current`` show as deleted, because the
    writer replaces the folder's contents. Returns "" when nothing changes.
    """
    folder = folder.strip("/")
    chunks: list[str] = []
    for name in sorted(set(current) | set(proposed)):
        before, after = current.get(name), proposed.get(name)
        if before == after:
            continue
        path = f"{folder}/{name}" if folder else name
        header = [f"diff --git a/{path} b/{path}\n"]
        if before is None:
            header.append("new file\n")
        elif after is None:
            header.append("deleted file\n")
        lines = difflib.unified_diff(
            _lines(before),
            _lines(after),
            fromfile=f"a/{path}" if before is not None else "/dev/null",
            tofile=f"b/{path}" if after is not None else "/dev/null",
            n=3,
        )
        chunks.append("".join(header) + "".join(lines))
    return "".join(chunks)


def _lines(text: str | None) -> list[str]:
    if not text:
        return []
    lines = text.splitlines(keepends=True)
    if not lines[-1].endswith("\n"):
        lines[-1] += "\n"  # rendered files always end in one; keep the diff line-based
    return lines
