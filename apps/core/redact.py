"""Keep credentials out of messages and logs.

Everything git prints, and every URL we mention, goes through a ``Redactor`` before it
reaches an exception message, a log line or the release page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")


def redact_url(url: str) -> str:
    """The URL with any password (or token used as an HTTP user name) masked."""
    return Redactor()(url)


class Redactor:
    """Masks the given secrets, and passwords inside URLs, in any text."""

    def __init__(self, secrets: Iterable[str] = ()):
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return _URL_USERINFO.sub(self._mask_userinfo, text)

    @staticmethod
    def _mask_userinfo(match: re.Match[str]) -> str:
        userinfo = match["userinfo"]
        if ":" in userinfo:
            return f"{match['scheme']}{userinfo.split(':', 1)[0]}:{MASK}@"
        if match["scheme"].lower().startswith("http"):
            return f"{match['scheme']}{MASK}@"  # a token passed as the user name
        return match.group(0)  # ssh://git@host: a user name, not a secret
