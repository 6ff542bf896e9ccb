"""The options every working subcommand shares, defined once: same names, same defaults, same help.

``numberyo sync`` and ``numberyo check`` both talk to the API and write a warehouse; before this
module each defined its own flags and they drifted (``check`` had no ``-v`` nor
``--max-retries``). A subcommand adds the groups it needs and reads them back with
:func:`client_options` and :func:`configure_logging`.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

from numberyo_provider.config import BASE_URL_ENV, PARQUET_DEFAULT_TEXT, PRIVACY_MODES

__all__ = [
    "add_api_options",
    "add_output_options",
    "amount",
    "client_options",
    "configure_logging",
    "count",
    "days",
    "deprecations_on_stderr",
    "finite",
    "mebibytes",
    "positive_int",
    "seconds",
]


# --- argument types: each error names what was expected --------------------------------------


def count(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def amount(text: str) -> Decimal:
    """A number of credits >= 0."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected a number of credits, got {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of credits >= 0, got {text!r}")
    return value


def finite(text: str, unit: str, *, zero: bool) -> float:
    """A finite number of ``unit``, > 0 (or >= 0 with ``zero``): the one rule for every flag
    that takes an amount of time or size."""
    bound = ">= 0" if zero else "> 0"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of {unit}, got {text!r}") from None
    if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
        raise argparse.ArgumentTypeError(f"expected a number of {unit} {bound}, got {text!r}")
    return value


def days(text: str) -> float:
    """A finite number of days >= 0."""
    return finite(text, "days", zero=True)


def seconds(text: str) -> float:
    """A finite number of seconds > 0."""
    return finite(text, "seconds", zero=False)


def mebibytes(text: str) -> float:
    """A finite number of MiB > 0."""
    return finite(text, "MiB", zero=False)


# --- the shared groups ------------------------------------------------------------------------


def add_api_options(parser: argparse.ArgumentParser, *, conn_id: bool = False) -> None:
    """``--base-url``, ``--timeout``, ``--max-response-mb``, ``--max-retries``."""
    override = "; overrides the connection's extra with --conn-id" if conn_id else ""
    group = parser.add_argument_group("API")
    group.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help=f"API address (default: ${BASE_URL_ENV}, else https://www.numberyo.tech)",
    )
    group.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        metavar="SECONDS",
        help="the longest one API request may take, connect plus the whole answer, before it is "
        f"cut off (default 30{override}). A paid POST cut off is never sent again: it is "
        "looked up in the account's history",
    )
    group.add_argument(
        "--max-response-mb",
        type=mebibytes,
        default=None,
        metavar="MB",
        help=f"refuse an API answer larger than this many MiB (default 32{override})",
    )
    group.add_argument(
        "--max-retries",
        type=count,
        default=None,
        metavar="N",
        help=f"retries of a failed API request, never of a POST that may have been received "
        f"(default 5{override})",
    )


class RenamedFlag(argparse.Action):
    """An old flag name: works as the new one (``new=``), after a one-line warning on stderr."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(
            f"{parser.prog}: warning: {option_string} is deprecated, use {self.new} (the old "
            "name stops working in 0.3)",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


PARQUET_FLAG = "--parquet-path"
#: Renamed in 0.2; accepted with a warning until 0.3.
OLD_PARQUET_FLAG = "--parquet-dir"


def add_output_options(parser: argparse.ArgumentParser, *, what: str) -> argparse._ArgumentGroup:
    """``--warehouse``, ``--parquet-path``, ``--privacy``, ``--lock-timeout``, ``--json``,
    ``--no-progress``, ``-v``; returns the group (for a subcommand's own output flags). The
    landing is read back as ``args.parquet_path``, whichever spelling of the flag was used."""
    group = parser.add_argument_group("output")
    group.add_argument(
        "--warehouse",
        required=True,
        metavar="URL",
        help="duckdb:///path/file.duckdb or any SQLAlchemy URL "
        "(e.g. postgresql+psycopg://user@host:5432/db)",
    )
    group.add_argument(
        PARQUET_FLAG,
        dest="parquet_path",
        default=None,
        metavar="PATH",
        help=f"where {what} are landed before loading: a directory or s3://bucket/prefix "
        f"(default: {PARQUET_DEFAULT_TEXT})",
    )
    group.add_argument(
        OLD_PARQUET_FLAG,
        action=RenamedFlag,
        new=PARQUET_FLAG,
        dest="parquet_path",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help=argparse.SUPPRESS,
    )
    group.add_argument(
        "--privacy",
        choices=PRIVACY_MODES,
        default=None,
        help="what the warehouse keeps of phone numbers and IMSIs: keep, mask or hmac (keyed "
        "pseudonyms; secret from NUMBERYO_PRIVACY_SECRET, or the connection extra "
        "privacy_secret). Default: NUMBERYO_PRIVACY_MODE, else keep",
    )
    group.add_argument(
        "--lock-timeout",
        type=seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another writer of a DuckDB file (default 60)",
    )
    group.add_argument("--json", action="store_true", help="print the summary as JSON")
    group.add_argument("--no-progress", action="store_true", help="never draw the progress line")
    group.add_argument(
        "-v", "--verbose", action="store_true", help="log what the run does (to stderr)"
    )
    return group


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """The client keyword arguments the shared API flags set (only those given)."""
    out: dict[str, Any] = {}
    if args.timeout is not None:
        out["timeout"] = args.timeout
    if args.max_response_mb is not None:
        out["max_response_mb"] = args.max_response_mb
    if args.max_retries is not None:
        out["max_retries"] = args.max_retries
    return out


def configure_logging(verbose: bool) -> None:
    """Our log lines go to stderr only (stdout is the summary or the JSON), whatever logging
    Airflow set up when it was imported; ``-v`` shows what the run does."""
    logger = logging.getLogger("numberyo_provider")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("numberyo: %(levelname)s: %(message)s"))
    logger.handlers = [handler]
    logger.propagate = False
    logger.disabled = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


#: The modules whose deprecation warnings :func:`deprecations_on_stderr` prints.
_OUR_MODULES = r"numberyo_provider(\.|$)"


@contextmanager
def deprecations_on_stderr(prog: str) -> Iterator[None]:
    """Our deprecation warnings raised inside (a renamed environment variable, say) as one line
    each on stderr, ``<prog>: warning: <what>``, as for a renamed flag: Python's default filters
    would hide them from a command line. Other warnings are shown as they would have been."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", category=DeprecationWarning, module=_OUR_MODULES)
            yield
    finally:  # a failed command still says what was deprecated in what it was given
        for w in caught:
            if _is_ours(w):
                print(f"{prog}: warning: {w.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _is_ours(warning: warnings.WarningMessage) -> bool:
    path = warning.filename.replace("\\", "/")
    return issubclass(warning.category, DeprecationWarning) and "/numberyo_provider/" in path
