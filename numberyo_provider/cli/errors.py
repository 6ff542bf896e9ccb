"""How ``numberyo sync`` and ``numberyo check`` fail: one exit code per kind of mistake, one line.

Both commands translate errors here, so the same mistake (no token, a bad ``--base-url`` or
``--warehouse``, an API nobody answers at) gets the same code and the same kind of line from both.

=====  ===================================================================================
code   meaning
=====  ===================================================================================
0      done
1      failure: the run could not do its job (API unreachable, token refused, warehouse down,
       every number sent failed, a bug); what was done is recorded
2      usage error (bad flag, no token, bad URL): found before anything is written
3      ``check`` stopped because the account ran out of credits
4      ``check`` finished partially: checks were created, but some numbers failed or their
       outcome stayed unknown; rerun the same command to retry them (nothing is paid twice)
130    interrupted (Ctrl-C)
=====  ===================================================================================

The line goes to stderr as ``numberyo <command>: error: <what>``; it never holds a traceback or
the API token.
"""

from __future__ import annotations

import re
import sys

from numberyo_provider.errors import (
    ConfigurationError,
    InsufficientCreditsError,
    NumbersFailedError,
    NumberYoError,
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NO_CREDITS = 3
EXIT_PARTIAL = 4
EXIT_INTERRUPTED = 130

#: For ``--help`` of both commands.
EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 failure (nothing could be done, e.g. API unreachable); 2 usage error "
    "(nothing written); 3 out of credits; 4 partial (some numbers failed: rerun to retry them); "
    "130 interrupted."
)


def exit_code(exc: BaseException) -> int:
    """The exit code of a command stopped by ``exc``."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, ConfigurationError):
        return EXIT_USAGE
    if isinstance(exc, InsufficientCreditsError):
        return EXIT_NO_CREDITS
    if isinstance(exc, NumbersFailedError):
        return EXIT_FAILURE if exc.nothing_checked else EXIT_PARTIAL
    return EXIT_FAILURE


#: Core messages name settings by their Python keyword (``sql=``, ``base_url``): on the command
#: line they are flags. Plain words (table, column) count only with their ``=``.
_KEYWORD_AS_FLAG = re.compile(
    r"(?<![\w-])(?:(sql|table|column|schema|ledger|warehouse)=|"
    r"(base_url|max_checks|max_credits|concurrency|cost_estimate|parquet_path)\b=?)"
    r"(?P<value>['\"\w])?"
)


def _as_flag(match: re.Match[str]) -> str:
    name = match.group(1) or match.group(2)
    flag = "--" + name.replace("_", "-")
    value = match.group("value")
    return f"{flag} {value}" if value else flag


def flags_for_keywords(text: str) -> str:
    """``sql=`` -> ``--sql``, ``table='x'`` -> ``--table 'x'``, ``base_url`` -> ``--base-url``."""
    return _KEYWORD_AS_FLAG.sub(_as_flag, text)


def one_line(exc: BaseException) -> str:
    """``exc`` as one line: our errors by their message (settings named as the flags that set
    them), anyone else's (a database driver's, a bug) prefixed by the exception's type."""
    text = " ".join(str(exc).split())
    if isinstance(exc, ConfigurationError):
        text = flags_for_keywords(text)
    if isinstance(exc, NumberYoError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def report(command: str, exc: BaseException, *, spent: str | None = None) -> int:
    """Print the one stderr line for ``exc`` (with ``spent``: whether money was spent) and return
    the exit code."""
    line = one_line(exc)
    if spent:
        line = f"{line.rstrip('.')}; {spent}"
    print(f"numberyo {command}: error: {line}", file=sys.stderr)
    return exit_code(exc)


def check_warehouse_url(url: str) -> None:
    """Raise :class:`ConfigurationError` for a warehouse URL that cannot work (bad syntax, no such
    SQLAlchemy dialect or driver), without connecting or creating anything."""
    from numberyo_provider.warehouse import connect_warehouse  # pyarrow: not for `--help`

    connect_warehouse(url).close()


__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_NO_CREDITS",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "check_warehouse_url",
    "exit_code",
    "one_line",
    "report",
]
