"""The one error a serving configuration raises, with every problem by field path."""

from __future__ import annotations

from collections.abc import Mapping

from apps.gitops.errors import GitOpsError


class ConfigError(GitOpsError, ValueError):
    """The serving configuration is not valid.

    ``errors`` maps a field path (``resources.cpu``, ``env.MY VAR``) to a sentence saying
    what is wrong and what to write instead.
    """

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(sorted(errors.items()))
        super().__init__(
            "Invalid serving configuration: "
            + "; ".join(f"{path}: {message}" for path, message in self.errors.items())
        )
