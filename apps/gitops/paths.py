"""Where a release's files live in the GitOps repository, and keeping writes inside.

Service and environment names become folder names (``environments/<env>/<service>``) and
the ApplicationSet turns those folders into Argo CD Applications and namespaces, so they
must be DNS-1123 labels. That alone keeps ``..``, ``/``, NUL, look-alike Unicode letters
and ``.git`` out; the checks below still name each case, so the person reading the error
learns why, and ``resolve_inside`` re-checks every concrete path against symlinks.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path, PurePosixPath

from apps.gitops.errors import UnsafePathError
from apps.gitops.names import DNS1123_LABEL

ENVIRONMENTS_DIR = "environments"
# A bare file name in a release folder: what renderers produce, nothing that git or a
# shell treats specially.
_FILE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


def check_label(value: object, what: str) -> str:
    """Return ``value`` if it is a DNS-1123 label, else raise ``UnsafePathError``."""
    if not isinstance(value, str):
        raise UnsafePathError(f"The {what} name must be text, not {type(value).__name__}.")
    if "\x00" in value:
        raise UnsafePathError(f"The {what} name contains a NUL character.")
    if "/" in value or "\\" in value:
        raise UnsafePathError(f"The {what} name {value!r} contains a path separator.")
    if value in {".", ".."} or ".." in value:
        raise UnsafePathError(f"The {what} name {value!r} contains '..'.")
    if ".git" in value.lower():
        raise UnsafePathError(f"The {what} name {value!r} names git's own folder.")
    if not value.isascii():
        # Cyrillic U+0430 looks like Latin 'a': two services that look the same must not be
        # two folders. NFKC also folds full-width letters, which we name in the message.
        folded = unicodedata.normalize("NFKC", value)
        raise UnsafePathError(
            f"The {what} name {value!r} contains non-ASCII characters"
            + (f" (it looks like {folded!r})" if folded.isascii() else "")
            + "; use lowercase a-z, 0-9 and '-'."
        )
    if not DNS1123_LABEL.fullmatch(value):
        raise UnsafePathError(
            f"The {what} name {value!r} is not valid: use 1 to 63 lowercase letters a-z, "
            "digits and '-', starting and ending with a letter or digit."
        )
    return value


def release_folder(environment: str, service: str) -> PurePosixPath:
    """``environments/<environment>/<service>``, after checking both names."""
    return PurePosixPath(
        ENVIRONMENTS_DIR, check_label(environment, "environment"), check_label(service, "service")
    )


def check_file_name(name: object) -> str:
    """A file written into a release folder: a bare, boring name."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or ".." in name:
        raise UnsafePathError(
            f"{name!r} is not an allowed manifest file name: use lowercase letters, digits, "
            "'.', '_' and '-', starting with a letter or digit, no folders."
        )
    return name


def resolve_inside(root: Path, relative: PurePosixPath | str) -> Path:
    """``root / relative`` after proving it stays inside ``root``.

    Refuses absolute paths, ``..`` segments, ``.git`` anywhere, and any existing
    component that is a symlink (a committed symlink ``environments/prod -> /etc`` must
    not make us write outside the working clone).
    """
    relative = PurePosixPath(relative)
    if relative.is_absolute() or not relative.parts:
        raise UnsafePathError(f"{str(relative)!r} is not a relative path inside the repository.")
    for part in relative.parts:
        if part in {"", ".", ".."} or part.lower() == ".git" or "\x00" in part:
            raise UnsafePathError(f"{str(relative)!r} has a forbidden path segment {part!r}.")
    root = Path(os.path.realpath(root))
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise UnsafePathError(
                f"{current.relative_to(root)} is a symbolic link in the GitOps repository; "
                "Slipway does not write through links."
            )
    resolved = Path(os.path.realpath(current))
    if resolved != root and root not in resolved.parents:
        raise UnsafePathError(f"{str(relative)!r} resolves outside the repository.")
    return current
