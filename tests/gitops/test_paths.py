"""Release folders: names that would escape or confuse are refused, writes stay inside."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from apps.gitops.errors import UnsafePathError
from apps.gitops.paths import check_file_name, release_folder, resolve_inside


def test_release_folder():
    assert release_folder("prod", "churn") == PurePosixPath("environments/prod/churn")


@pytest.mark.parametrize(
    "name, reason",
    [
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("../prod", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("churn\x00", "NUL"),
        (".git", "git"),
        ("x.git", "git"),
        ("\u0441hurn", "non-ASCII"),  # Cyrillic es, looks like "c"
        ("\uff43hurn", "looks like 'churn'"),  # full-width c
        ("Churn", "not valid"),
        ("-churn", "not valid"),
        ("", "not valid"),
        ("a" * 64, "not valid"),
    ],
)
def test_unsafe_names_are_refused_with_the_reason(name, reason):
    with pytest.raises(UnsafePathError) as caught:
        release_folder("staging", name)
    assert reason in str(caught.value)
    with pytest.raises(UnsafePathError):
        release_folder(name, "churn")


def test_non_text_names_are_refused():
    with pytest.raises(UnsafePathError):
        release_folder("staging", None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["../x.yaml", "a/b.yaml", ".hidden", "Deployment.yaml", "", "x\n"])
def test_file_names_must_be_bare_and_boring(name):
    with pytest.raises(UnsafePathError):
        check_file_name(name)


def test_resolve_inside_refuses_symlinks_and_dot_segments(tmp_path: Path):
    root = tmp_path / "repo"
    (root / "environments").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "environments" / "prod").symlink_to(outside)

    with pytest.raises(UnsafePathError, match="symbolic link"):
        resolve_inside(root, "environments/prod/churn")
    for bad in ("../x", "/etc/passwd", "environments/.git/config", "a/../../b"):
        with pytest.raises(UnsafePathError):
            resolve_inside(root, bad)
    assert resolve_inside(root, "environments/staging/churn") == (
        root.resolve() / "environments/staging/churn"
    )
