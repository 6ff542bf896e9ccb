"""What happens to phone numbers and IMSIs before they are landed: kept, masked or pseudonymised.

Applied to the Arrow data of the three data tables before it is written anywhere (Parquet,
warehouse).
``docs/privacy.md`` explains what each mode means under the GDPR; this module is the exact rule:

``keep``
    Values are written as the API sent them.
``mask``
    Letters and digits are replaced by ``*``, except, for phone numbers in international form
    (``msisdn``, ``number_requested``, ``phone_number``, ``e164_format``, ``international_format``)
    the country calling code and the last two digits; for national forms (``local_format``,
    ``national_format``) the last two digits; for the IMSI the MCC + MNC (3 + the length of the
    row's ``mnc`` when it matches, else 3 + 2 digits). Separators (``+``, spaces, ``-``, ...) are
    kept, so is the length. When fewer than four characters would be hidden, the last two digits
    are hidden too; when still fewer than four, everything is. Examples: ``32456789023`` ->
    ``32*******23``; ``+32 456 78 90 23`` -> ``+32 *** ** ** 23``; ``456789023`` -> ``*******23``;
    IMSI ``206010000000000`` (mnc ``01``) -> ``20601**********``.
``hmac``
    ``hmac:`` + hex HMAC-SHA256 keyed with the secret. Phone-like values (only digits, ``+``,
    spaces, ``-``, ``.``, ``/``, parentheses) are hashed on their digits alone, so one number gives
    one pseudonym whether it came as ``32456789023``, ``+32456789023`` or ``+32 456 78 90 23``, and
    pseudonymised tables still join. Never an unkeyed hash: the space of phone numbers is small
    enough to hash exhaustively.

Inside the ``extra`` JSON of every data table the top-level keys in :data:`PERSONAL_EXTRA_KEYS` are
treated the same way; other keys, and nested values, are not (fields the API adds later are not
covered until they are listed here). Applying a policy twice changes nothing: values already masked
(holding ``*``) or pseudonymised (``hmac:...``) are left as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import phonenumbers
import pyarrow as pa

from numberyo_provider.config import (
    PRIVACY_MODE_ENV,
    PRIVACY_MODES,
    PRIVACY_SECRET_ENV,
    PrivacyMode,
    resolve_privacy,
)
from numberyo_provider.errors import ConfigurationError
from numberyo_provider.schema import CHECKS, HLR_RESULTS, VERIFY_RESULTS, Table

#: How a value is masked: a number with its country code, a national number, an IMSI.
ValueKind = Literal["international", "national", "imsi"]

#: The modes (their words are defined with the setting, in :mod:`numberyo_provider.config`).
MODES = PRIVACY_MODES
ENV_MODE = PRIVACY_MODE_ENV
ENV_SECRET = PRIVACY_SECRET_ENV
HMAC_PREFIX = "hmac:"
#: Shorter keys could be guessed from one known (number, pseudonym) pair.
MIN_SECRET_BYTES = 16

#: Personal columns per table and how each is masked.
PERSONAL_COLUMNS: Mapping[str, Mapping[str, ValueKind]] = {
    CHECKS.name: {"phone_number": "international"},
    HLR_RESULTS.name: {
        "msisdn": "international",
        "number_requested": "international",
        "local_format": "national",
        "imsi": "imsi",
    },
    VERIFY_RESULTS.name: {"e164_format": "international"},
}

#: Top-level keys of the ``extra`` JSON (any data table) that hold personal values.
PERSONAL_EXTRA_KEYS: Mapping[str, ValueKind] = {
    "number_requested": "international",
    "national_format": "national",
    "international_format": "international",
    "msisdn": "international",
    "e164_format": "international",
    "phone_number": "international",
    "local_format": "national",
    "imsi": "imsi",
}

_COUNTRY_CODES = frozenset(str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_PHONE_LIKE = re.compile(r"[+\d\s().\-/]*\d[+\d\s().\-/]*")
_MIN_HIDDEN = 4
_EXTRA_MARKERS = tuple(f'"{k}"' for k in PERSONAL_EXTRA_KEYS)


@dataclass(frozen=True)
class PrivacyPolicy:
    """How personal columns are written; see the module docstring for the exact rules."""

    mode: PrivacyMode = "keep"
    secret: bytes | str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        mode = str(self.mode).strip().lower()
        if mode not in MODES:
            raise ConfigurationError(
                f"unknown privacy mode {self.mode!r}: use one of {', '.join(MODES)} "
                f"(environment variable {ENV_MODE})"
            )
        object.__setattr__(self, "mode", mode)
        if mode == "hmac":
            key = self._key_or_none()
            if not key:
                raise ConfigurationError(
                    f"privacy mode 'hmac' needs a secret key: set {ENV_SECRET} (at least "
                    f"{MIN_SECRET_BYTES} bytes, e.g. the output of "
                    "`python -c 'import secrets; print(secrets.token_hex(32))'`) and keep it "
                    "apart from the data"
                )
            if len(key) < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"the privacy secret is {len(key)} bytes; use at least {MIN_SECRET_BYTES} "
                    "random bytes (a short key can be guessed from one known number)"
                )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PrivacyPolicy:
        """The policy from ``NUMBERYO_PRIVACY_MODE`` (default ``keep``) and ``..._SECRET``."""
        return resolve_privacy(environ=environ)

    def apply(self, table: Table, data: pa.Table) -> pa.Table:
        """``data`` with the personal columns of ``table`` protected; other columns untouched."""
        if self.mode == "keep":
            return data
        names = data.column_names
        for name, kind in PERSONAL_COLUMNS.get(table.name, {}).items():
            if name not in names:
                continue
            values = _strings(data.column(name))
            if kind == "imsi" and "mnc" in names:
                mncs = _strings(data.column("mnc"))
                out = [self._protect(v, kind, m) for v, m in zip(values, mncs, strict=True)]
            else:
                cache: dict[str, str] = {}
                out = [None if v is None else self._cached(v, kind, cache) for v in values]
            data = _replace(data, name, out)
        if "extra" in names:
            data = _replace(
                data, "extra", [self._protect_extra(v) for v in _strings(data["extra"])]
            )
        return data

    def protect(self, value: str | None, kind: ValueKind = "international") -> str | None:
        """One value under this policy (e.g. for a log line or a ledger)."""
        if value is None or self.mode == "keep":
            return value
        return self._protect(value, kind, None)

    # -- internals ------------------------------------------------------------------------

    def _key_or_none(self) -> bytes | None:
        if self.secret is None:
            return None
        return self.secret.encode() if isinstance(self.secret, str) else bytes(self.secret)

    def _cached(self, value: str, kind: ValueKind, cache: dict[str, str]) -> str:
        out = cache.get(value)
        if out is None:
            out = cache[value] = self._protect(value, kind, None) or value
        return out

    def _protect(self, value: str | None, kind: ValueKind, mnc: str | None) -> str | None:
        if value is None or value == "" or value.startswith(HMAC_PREFIX) or "*" in value:
            return value
        if self.mode == "mask":
            return mask_value(value, kind, mnc=mnc)
        key = self._key_or_none()
        assert key is not None  # __post_init__ guarantees it in hmac mode
        return hmac_value(value, key)

    def _protect_extra(self, text: str | None) -> str | None:
        if text is None or not any(marker in text for marker in _EXTRA_MARKERS):
            return text
        try:
            doc = json.loads(text)
        except ValueError:
            return text  # not JSON: the warehouse rejects it with a clear error
        if not isinstance(doc, dict):
            return text
        changed = False
        for key, kind in PERSONAL_EXTRA_KEYS.items():
            value = doc.get(key)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                continue
            protected = self._protect(str(value), kind, None)
            if protected != value:
                doc[key] = protected
                changed = True
        if not changed:
            return text
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def mask_value(value: str, kind: ValueKind, *, mnc: str | None = None) -> str:
    """``value`` masked as the module docstring defines (length and separators kept)."""
    positions = [i for i, ch in enumerate(value) if ch.isalnum()]
    sig = "".join(value[i] for i in positions)
    head = 0
    if sig.isdigit():
        if kind == "international":
            head = next((n for n in (1, 2, 3) if sig[:n] in _COUNTRY_CODES), 0)
        elif kind == "imsi":
            mnc_len = len(mnc) if mnc and mnc.isdigit() and sig[3 : 3 + len(mnc)] == mnc else 2
            head = 3 + (mnc_len if mnc_len in (2, 3) else 2)
    tail = 2 if kind != "imsi" and sig.isdigit() else 0
    if len(sig) - head - tail < _MIN_HIDDEN:
        tail = 0
    if len(sig) - head < _MIN_HIDDEN:
        head = 0
    keep = set(positions[:head]) | set(positions[len(positions) - tail :] if tail else [])
    return "".join(ch if (i in keep or not ch.isalnum()) else "*" for i, ch in enumerate(value))


def hmac_value(value: str, key: bytes) -> str:
    """``hmac:<hex HMAC-SHA256>`` of the value's digits (phone-like values) or of the value."""
    canonical = re.sub(r"\D", "", value) if _PHONE_LIKE.fullmatch(value) else value
    return HMAC_PREFIX + hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _strings(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = col.cast(pa.string())
    values: list[Any] = col.to_pylist()
    return values


def _replace(data: pa.Table, name: str, values: list[Any]) -> pa.Table:
    i = data.schema.get_field_index(name)
    old = data.schema.field(i)
    typ = old.type if pa.types.is_large_string(old.type) else pa.string()
    return data.set_column(i, old.with_type(typ), pa.array(values, typ))
