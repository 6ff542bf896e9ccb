"""The client's arguments: their defaults, and the checks run before anything is sent.

Every argument is checked when a client is built or a call is made, before any request: a bad
value is a :class:`~numberyo_provider.errors.ConfigurationError` with one line naming it, never a
request that might cost money. The token has its own module (:mod:`numberyo_provider.api.auth`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from urllib.parse import urlsplit

from numberyo_provider.config import DEFAULT_BASE_URL as DEFAULT_BASE_URL  # the setting's default
from numberyo_provider.errors import ConfigurationError

#: Seconds one attempt may take, from connect to the last byte of the answer.
DEFAULT_TIMEOUT = 30.0
#: Seconds to establish the connection (capped by the total timeout).
DEFAULT_CONNECT_TIMEOUT = 5.0
#: The largest answer read, in MiB: a results page is a few KiB, a listing page about 5 KiB.
DEFAULT_MAX_RESPONSE_MB = 32.0

_MIB = 1024 * 1024


def _likely_scheme(host_and_port: str) -> str:
    """``http`` for a loopback or private address (a simulator, a local proxy), else ``https``."""
    host = host_and_port.split("/", 1)[0]
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host.strip("[]")
    if host.lower() == "localhost":
        return "http"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "https"
    return "http" if address.is_loopback or address.is_private else "https"


def _clean_base_url(base_url: object) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ConfigurationError(
            f"base_url is empty: use the API's address, e.g. {DEFAULT_BASE_URL!r}"
        )
    text = base_url.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigurationError(f"base_url {base_url!r} is not a valid URL: {exc}") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "base_url must not contain credentials (user:password@); pass the API token as the "
            "token instead"
        )
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        hint = f"; did you mean '{_likely_scheme(text)}://{text}'?" if "://" not in text else ""
        raise ConfigurationError(
            f"base_url {base_url!r} needs an http:// or https:// scheme and a host, e.g. "
            f"{DEFAULT_BASE_URL!r}{hint}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url {base_url!r} must not have a query or a fragment")
    path = parts.path.rstrip("/")
    if path.lower().endswith("/api"):
        raise ConfigurationError(
            f"base_url {base_url!r} ends with /api, but the client adds /api/... itself: use "
            f"{parts.scheme}://{parts.netloc}{path[:-4]!s}"
        )
    return f"{parts.scheme.lower()}://{parts.netloc}{path}"


def _positive(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _clean_timeout(timeout: object) -> tuple[float, float]:
    """``(connect, total)`` seconds; one number is the total, with the default connect cap."""
    if isinstance(timeout, tuple | list):
        if len(timeout) != 2:
            raise ConfigurationError(
                f"timeout must be seconds or a (connect, total) pair, got {timeout!r}"
            )
        connect, total = _positive("connect timeout", timeout[0]), _positive("timeout", timeout[1])
    else:
        total = _positive("timeout", timeout)
        connect = DEFAULT_CONNECT_TIMEOUT
    return min(connect, total), total


def _clean_max_response_mb(value: object) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"max_response_mb must be a number of MiB > 0, got {value!r}")
    return max(1, int(value * _MIB))


def _clean_phone_number(phone_number: object) -> str:
    if isinstance(phone_number, int) and not isinstance(phone_number, bool):
        phone_number = str(phone_number)
    if not isinstance(phone_number, str):
        raise ConfigurationError(
            f"phone_number must be a string of digits, got {type(phone_number).__name__}"
        )
    digits = "".join(phone_number.split())
    if digits.startswith("+"):
        digits = digits[1:]
    if not re.fullmatch(r"[0-9]+", digits):
        raise ConfigurationError(
            f"phone_number {phone_number!r} must be digits in international format, e.g. "
            "32456789023 or +32 456789023; normalise numbers before sending them"
        )
    return digits


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    return value


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_MB",
    "DEFAULT_TIMEOUT",
]
