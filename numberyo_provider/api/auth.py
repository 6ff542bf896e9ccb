"""The API token: cleaned once, held by one object, never shown.

A token is pasted from a dashboard into an environment variable or an Airflow connection's
password, sometimes with its header prefix (``Bearer abc``): :func:`_clean_token` is the one rule
both clients and the hook apply. The cleaned token then lives only in a :class:`_BearerAuth`,
which adds the ``Authorization`` header at send time and masks every copy of the token in text
the client is about to show (:meth:`_BearerAuth.redact`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import requests.auth

from numberyo_provider.config import TOKEN_ENV
from numberyo_provider.errors import ConfigurationError

#: Where users are told to put the token (the Airflow hook reads the connection password).
TOKEN_ENV_VAR = TOKEN_ENV

_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: safe in a header
_REDACTED = "***"


class _BearerAuth(requests.auth.AuthBase):
    """Adds the Authorization header at send time, so the token sits in no headers dict we own."""

    __slots__ = ("_header", "_token")

    def __init__(self, token: str) -> None:
        self._token = token
        self._header = f"Bearer {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    @property
    def header(self) -> str:
        """The Authorization header's value, for a transport that sets headers itself."""
        return self._header

    def __repr__(self) -> str:
        return f"<BearerAuth {_REDACTED}>"

    def redact(self, value: Any) -> Any:
        """``value`` (text, or JSON made of dicts and lists) with every copy of the token masked."""
        if isinstance(value, str):
            return value.replace(self._token, _REDACTED) if self._token in value else value
        if isinstance(value, Mapping):
            return {self.redact(k): self.redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        return value


def _clean_token(token: object) -> str:
    if not isinstance(token, str):
        raise ConfigurationError(
            f"the NumberYo API token must be a string, got {type(token).__name__}: set "
            f"{TOKEN_ENV_VAR} or the password of the Airflow connection"
        )
    # Pasted with its header prefix ("Bearer abc"): keep the token only.
    text = re.sub(r"^bearer(?:\s+|$)", "", token.strip(), flags=re.IGNORECASE)
    if not text:
        raise ConfigurationError(
            f"the NumberYo API token is empty: set {TOKEN_ENV_VAR} or the password of the Airflow "
            "connection (generate a token on the NumberYo dashboard)"
        )
    if not _TOKEN_CHARS.fullmatch(text):
        raise ConfigurationError(
            "the NumberYo API token contains spaces, control or non-ASCII characters (not shown "
            f"here): copy it again from the dashboard into {TOKEN_ENV_VAR} or the connection"
        )
    return text


__all__ = ["TOKEN_ENV_VAR"]
