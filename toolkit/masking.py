"""Keeps secrets out of everything devtool prints: URL passwords, secret-looking env values, known values."""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)(?P<secret>[^@/\s]+)(?P<tail>@)")
# NAME_PASSWORD=value, "secret_key": "value", PGPASSWORD value ...
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<head>\b[A-Za-z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY)[A-Za-z0-9_]*['\"]?\s*[=:]\s*['\"]?)"
    r"(?P<secret>[^\s'\",;]+)",
    re.IGNORECASE,
)
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY", re.IGNORECASE)


class Masker:
    """Replaces secrets in text; learns exact secret values (e.g. from a container's env) as it meets them."""

    def __init__(self) -> None:
        self._known: set[str] = set()

    def learn_environment(self, env: dict[str, str] | list[str]) -> None:
        """Remember secret values from an environment: secret-named variables and passwords inside URLs."""
        pairs = list(env.items()) if isinstance(env, dict) else [item.partition("=")[::2] for item in env]
        secrets = set()
        # A "secret" that is also an ordinary value (POSTGRES_USER=postgres, POSTGRES_PASSWORD=postgres, a URL's
        # user or database name, our own name) would mask harmless text everywhere; URL and assignment
        # patterns still catch it where it stands as a password.
        ordinary = {"devtool"}
        for name, value in pairs:
            if _SECRET_NAME.search(name):
                secrets.add(value)
            else:
                ordinary.add(value)
            for match in _URL_PASSWORD.finditer(value):
                secrets.add(match.group("secret"))
                ordinary.update(re.split(r"[:/@?#.]+", _URL_PASSWORD.sub("", value)))
                ordinary.update(re.split(r"[:/@]+", match.group("head")))
        self._known.update(s for s in secrets if len(s) >= 6 and s not in ordinary and s != MASK)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group("tail"), text)
        text = _SECRET_ASSIGNMENT.sub(lambda m: m.group("head") + MASK, text)
        for secret in sorted(self._known, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text


masker = Masker()
