"""Every exception the package raises, rooted at :class:`NumberYoError`.

Callers branch on the class, not on message text: :class:`OutcomeUnknownError` in particular means
"a paid check MAY have been created; reconcile before sending again". Messages name the request
(method, path), the HTTP status and the server's own words, and never contain the API token.
"""

from __future__ import annotations

import errno as codes
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from numberyo_provider.checks.options import CheckSummary
    from numberyo_provider.status import StatusReport


_E = TypeVar("_E", bound=BaseException)


def _restore(cls: type[_E], args: tuple[object, ...], state: dict[str, object]) -> _E:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


_MAY_EXIST = (
    "The check MAY have been created and charged: list recent checks to reconcile before "
    "sending this number again."
)


def _sentence(*parts: str | None) -> str:
    """Join message parts as sentences, without doubling the server's own full stop."""
    out = ""
    for part in parts:
        if not part:
            continue
        if out and not out.endswith((".", "!", "?", ":")):
            out += "."
        out = f"{out} {part}" if out else part
    return out


class NumberYoError(Exception):
    """Root of everything this package raises."""

    #: True when a paid check may have been created although the call failed: reconcile (list
    #: recent checks) before sending the same number again.
    check_may_exist: bool = False

    def __reduce__(self) -> tuple[object, ...]:
        # Our __init__ signatures differ from ``args``; pickle the state instead (Airflow ships
        # exceptions across processes, e.g. from triggers).
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class ConfigurationError(NumberYoError, ValueError):
    """Bad user input or configuration; the message says what was wrong and what to do."""


class NumberYoAPIError(NumberYoError):
    """The server answered with an error status."""

    #: What the user can do about it; appended to the message.
    hint: str | None = None

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        server_message: str | None = None,
        body: Any = None,
        *,
        details: str | None = None,
        check_may_exist: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.server_message = server_message
        self.body = body
        self.details = details
        self.check_may_exist = check_may_exist
        head = f"{method} {path} -> {status}: {server_message or 'no message from the server'}"
        if details:
            head = f"{head} ({details})"
        super().__init__(_sentence(head, _MAY_EXIST if check_may_exist else None, self.hint))


class AuthenticationError(NumberYoAPIError):
    """401 or 403: the token is missing, wrong or revoked."""

    hint = (
        "Check the API token (NUMBERYO_API_TOKEN, or the password of the Airflow connection); "
        "generate a new one on the NumberYo dashboard if it was revoked."
    )


class NotFoundError(NumberYoAPIError):
    """404: the check does not exist or belongs to another account."""


class UnsupportedCheckTypeError(NumberYoAPIError):
    """400: the check type is not one the API supports."""


class ValidationError(NumberYoAPIError):
    """422: the server rejected the request's content."""


class InsufficientCreditsError(ValidationError):
    """422 saying the account lacks credits; ``server_message`` carries the server's text."""

    hint = "Top up credits on the NumberYo dashboard, then run again."


class RateLimitedError(NumberYoAPIError):
    """429 after the client's retries were used up (or the wait asked for was too long)."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        server_message: str | None = None,
        body: Any = None,
        *,
        details: str | None = None,
        check_may_exist: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        if retry_after is not None:
            wait = f"the server asked to wait {retry_after:g} s"
            details = f"{details}; {wait}" if details else wait
        super().__init__(
            method,
            path,
            status,
            server_message,
            body,
            details=details,
            check_may_exist=check_may_exist,
        )


class ServerError(NumberYoAPIError):
    """5xx after the client's retries were used up (or when retrying was not safe)."""


class BadResponseError(NumberYoError):
    """The server answered 2xx but the body is not what the API documents."""

    def __init__(
        self,
        detail: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
    ) -> None:
        self.detail = detail
        self.method = method
        self.path = path
        self.status = status
        where = " ".join(p for p in (method, path) if p)
        if status is not None:
            where = f"{where} -> {status}" if where else str(status)
        super().__init__(f"{where}: unexpected response: {detail}" if where else detail)

    def with_context(self, method: str, path: str, status: int | None) -> BadResponseError:
        """The same problem, now naming the request it came from."""
        return BadResponseError(self.detail, method=method, path=path, status=status)


class ResponseTooLargeError(BadResponseError):
    """A 2xx answer larger than the client's limit (``max_response_mb``); read no further.

    Not retried: it would be as large again. For a paid POST the check exists (the client turns
    this into :class:`OutcomeUnknownError`).
    """

    def __init__(
        self,
        limit_bytes: int,
        *,
        declared: int | None = None,
        received: int | None = None,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
    ) -> None:
        self.limit_bytes = limit_bytes
        self.declared = declared
        self.received = received
        limit_mb = limit_bytes / (1024 * 1024)
        if declared is not None and declared > limit_bytes:
            size = f"it announced {declared:,} bytes (Content-Length) and was not read"
        else:
            size = f"reading stopped after {received or 0:,} bytes"
        super().__init__(
            f"the answer is larger than the {limit_mb:g} MiB limit: {size}. If answers this "
            "large are expected, raise max_response_mb (client argument, connection extra, or "
            "--max-response-mb)",
            method=method,
            path=path,
            status=status,
        )

    def with_context(self, method: str, path: str, status: int | None) -> BadResponseError:
        return ResponseTooLargeError(
            self.limit_bytes,
            declared=self.declared,
            received=self.received,
            method=method,
            path=path,
            status=status,
        )


class TransportError(NumberYoError):
    """No usable HTTP answer: connection failure or timeout (after retries, when allowed)."""

    def __init__(self, method: str, path: str, detail: str, *, status: int | None = None) -> None:
        self.method = method
        self.path = path
        self.detail = detail
        self.status = status
        where = f"{method} {path}" + (f" -> {status}" if status is not None else "")
        super().__init__(f"{where}: {detail}")


class OutcomeUnknownError(TransportError):
    """A POST that may have reached the server: the check MAY exist and MAY have been charged.

    Never resend blindly; list recent checks (``NumberYoClient.iter_checks``) to find out.
    """

    check_may_exist = True


class InconsistentPaginationError(BadResponseError):
    """``GET /api/checks`` contradicts itself (pages that repeat, pages beyond the total, a total
    the listing cannot reach): a complete listing cannot be proven, so nothing is committed."""


def _first_file(path: str) -> str:
    """The deepest existing part of ``path`` when it is a file (``path`` itself otherwise)."""
    current = os.path.abspath(path)
    while not os.path.exists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current if os.path.exists(current) and not os.path.isdir(current) else path


class LandingError(NumberYoError):
    """A local fault while writing Parquet files (permission, not a directory, disk full).

    Built with :meth:`from_os_error`, the one place an ``OSError`` of the landing becomes a
    message that says what was wrong and what to do; ``errno`` keeps the original code.
    """

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        self.errno = errno
        super().__init__(message)

    @classmethod
    def from_os_error(cls, exc: OSError, root: str, *, outcome: str | None = None) -> LandingError:
        where = exc.filename if isinstance(exc.filename, str) else root
        code = exc.errno
        if isinstance(exc, PermissionError) or code in (codes.EACCES, codes.EPERM):
            what = f"permission denied on {where}"
            todo = "give this user write access to it"
        elif isinstance(exc, NotADirectoryError | FileExistsError) or code == codes.ENOTDIR:
            what = f"{_first_file(where)} is a file, not a directory"
            todo = "remove or rename that file"
        elif code in (codes.ENOSPC, codes.EDQUOT):
            what = f"no space left on the disk holding {root}"
            todo = "free some space"
        elif code == codes.EROFS:
            what = f"{where} is on a read-only file system"
            todo = "mount it writable"
        else:
            what = f"{exc.strerror or exc} ({where})"
            todo = "fix the directory"
        message = (
            f"cannot write Parquet files under {root}: {what}; {todo}, or choose another Parquet "
            "directory (--parquet-path, the operators' parquet_path)"
        )
        return cls(_sentence(message, outcome), errno=code)


def validation_details(body: Any) -> str | None:
    """Laravel's ``{"errors": {"field": ["msg", ...]}}`` as one line, or ``None``."""
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, Mapping) or not errors:
        return None
    parts = []
    for name, messages in errors.items():
        if isinstance(messages, list | tuple):
            text = " ".join(str(m) for m in messages)
        else:
            text = str(messages)
        parts.append(f"{name}: {text}")
    return "; ".join(parts)


class WarehouseError(NumberYoError):
    """A warehouse operation failed; the message names the database and what to do."""


class WarehouseLockedError(WarehouseError):
    """Another process holds the warehouse (DuckDB's single writer) past the lock timeout."""


class LoadError(WarehouseError):
    """A load could not be committed; nothing of it is visible (the transaction rolled back)."""


class SyncCancelled(NumberYoError):
    """The run was asked to stop (``on_kill``, Ctrl-C); nothing was committed."""


class ListingUnstableError(NumberYoError):
    """The check list kept shrinking while we paged it: a complete listing could not be proven."""


class SchemaMismatchError(NumberYoError, ValueError):
    """Data handed to the lander does not fit the table's schema; names the column."""


class NumbersFailedError(NumberYoError):
    """Numbers of the run failed or their outcome stayed unknown; what was created is kept.

    ``nothing_checked``: the run created (or found) no check at all, e.g. the API was unreachable;
    otherwise the run was partial.
    """

    def __init__(self, message: str, *, failed: int, unknown: int, nothing_checked: bool) -> None:
        super().__init__(message)
        self.failed = failed
        self.unknown = unknown
        self.nothing_checked = nothing_checked


class CheckRunError(NumberYoError):
    """The run stopped on an error that every further request would hit (token, server...)."""


class InsufficientCreditsStop(NumberYoError):
    """The account ran out of credits; what was done is kept, the rest is ``not_checked``."""

    def __init__(self, message: str, summary: CheckSummary) -> None:
        super().__init__(message)
        self.summary = summary


class StatusError(NumberYoError):
    """The report could not be read (no warehouse, unreachable database, not a numberyo one)."""


class NeedsAttention(NumberYoError):
    """Raised by :meth:`StatusReport.raise_for_attention`: the report lists what needs a person."""

    def __init__(self, report: StatusReport) -> None:
        self.report = report
        items = "; ".join(f"[{a.code}] {a.message}" for a in report.attention)
        super().__init__(f"{report.warehouse} needs attention: {items}")


__all__ = [
    "AuthenticationError",
    "BadResponseError",
    "CheckRunError",
    "ConfigurationError",
    "InconsistentPaginationError",
    "InsufficientCreditsError",
    "InsufficientCreditsStop",
    "LandingError",
    "ListingUnstableError",
    "LoadError",
    "NeedsAttention",
    "NotFoundError",
    "NumberYoAPIError",
    "NumberYoError",
    "NumbersFailedError",
    "OutcomeUnknownError",
    "RateLimitedError",
    "ResponseTooLargeError",
    "SchemaMismatchError",
    "ServerError",
    "StatusError",
    "SyncCancelled",
    "TransportError",
    "UnsupportedCheckTypeError",
    "ValidationError",
    "WarehouseError",
    "WarehouseLockedError",
    "validation_details",
]
