"""Settings that arrive as text: Airflow templates render "True" and "8" unless a DAG renders
native objects, and URI-form connection extras are always strings. One set of rules, with
errors that name the setting. Each takes any object (whatever a template or a connection gave)
and returns the typed value or raises a :class:`~numberyo_provider.errors.ConfigurationError`."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from numberyo_provider.errors import ConfigurationError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def as_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def as_int(name: str, value: object, *, minimum: int, optional: bool = False) -> int | None:
    """A whole number >= ``minimum``; None for nothing when ``optional``."""
    if value is None or (optional and str(value).strip().lower() in ("", "none")):
        if optional:
            return None
        raise ConfigurationError(f"{name} is required")
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}") from None
    if isinstance(number, bool) or number < minimum:
        raise ConfigurationError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return number


def as_seconds(name: str, value: object) -> float:
    """A finite number of seconds >= 0."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    try:
        number = float(value if isinstance(value, int | float) else str(value).strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return number


def as_decimal(name: str, value: object) -> Decimal | None:
    """A number >= 0, exact; None for nothing."""
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ConfigurationError(f"{name} must be a number, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")
    return amount


def as_text(value: object) -> str | None:
    """Text, or None for nothing (a Param left empty renders as "None" without native rendering)."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None") else text
