"""``numberyo sync``: bring a warehouse's copy of the account's check history up to date.

::

    export NUMBERYO_API_TOKEN=...            # or --conn-id with an Airflow connection
    numberyo sync --warehouse duckdb:///warehouse.duckdb

API address and token come from ``NUMBERYO_BASE_URL`` / ``NUMBERYO_API_TOKEN`` (or the Airflow
connection named by ``--conn-id``). Parquet files are landed under ``--parquet-dir`` (default
``./numberyo-parquet``, next to where you run it). A progress line is drawn on a terminal only; the
summary goes to stdout (``--json`` for machines). Exit codes are shared with ``numberyo check``
(:mod:`numberyo_provider.cli.errors`): 0 done; 1 failure (token refused, API or warehouse
unreachable, a lying server, a Parquet directory that cannot take files, ...); 2 usage error (bad
flag, no token, bad ``--base-url`` or ``--warehouse``), found before anything is written; 130
interrupted (Ctrl-C at any moment, the commit included: nothing of the run is committed). A
failure is one line on stderr; the token is never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from typing import Any

from numberyo_provider.cli.errors import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    check_warehouse_url,
    report,
)
from numberyo_provider.config import (
    BASE_URL_ENV,
    PARQUET_DEFAULT_TEXT,
    TOKEN_ENV,
    default_parquet_dir,
    resolve_base_url,
    resolve_privacy,
    resolve_token,
)
from numberyo_provider.errors import ConfigurationError, NumberYoError
from numberyo_provider.privacy import MODES as PRIVACY_MODES
from numberyo_provider.private_files import private_umask


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _mebibytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MiB, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of MiB > 0, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="sync the account's check history into a warehouse (incremental)",
        description="Sync every check the account ran (and its results) into a warehouse: "
        "the first run backfills, later runs only read what is new. API address and token: "
        f"{BASE_URL_ENV} / {TOKEN_ENV}, or --conn-id. {EXIT_CODES_HELP}",
    )
    parser.add_argument(
        "--warehouse",
        required=True,
        metavar="URL",
        help="duckdb:///path/file.duckdb or any SQLAlchemy URL "
        "(e.g. postgresql+psycopg://user@host:5432/db)",
    )
    parser.add_argument(
        "--parquet-dir",
        default=None,
        metavar="DIR",
        help=f"where Parquet files are landed: a directory or s3://bucket/prefix "
        f"(default: {PARQUET_DEFAULT_TEXT})",
    )
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="re-read every check and its results (the watermark is ignored)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="parallel API requests (default 8)",
    )
    parser.add_argument(
        "--privacy",
        choices=PRIVACY_MODES,
        default=None,
        help="what to do with phone numbers and IMSIs: keep, mask, or hmac (keyed pseudonyms; "
        "secret from NUMBERYO_PRIVACY_SECRET or the connection extra privacy_secret). "
        "Default: NUMBERYO_PRIVACY_MODE, else keep",
    )
    parser.add_argument(
        "--conn-id",
        default=None,
        metavar="ID",
        help="take base URL and token from this Airflow connection instead of the environment",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help=f"API address (default: {BASE_URL_ENV}, else https://www.numberyo.tech)",
    )
    parser.add_argument(
        "--lock-timeout",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another writer of a DuckDB file (default 60)",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=None,
        metavar="N",
        help="retries of a failed API request (default 5; ignored with --conn-id, which has "
        "its own setting)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="the longest one API request may take, connect plus the whole answer, before it "
        "is cut off and retried (default 30; overrides the connection's extra with --conn-id)",
    )
    parser.add_argument(
        "--max-response-mb",
        type=_mebibytes,
        default=None,
        metavar="MB",
        help="refuse an API answer larger than this many MiB (default 32; overrides the "
        "connection's extra with --conn-id)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON instead of text"
    )
    parser.add_argument("--no-progress", action="store_true", help="never draw the progress line")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what the sync does (to stderr)"
    )
    parser.set_defaults(func=handle)


def _from_connection(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    try:
        from numberyo_provider.hooks.numberyo import NumberYoHook
    except ImportError as exc:
        raise ConfigurationError(
            f"--conn-id needs Apache Airflow ({exc}); use {BASE_URL_ENV} / {TOKEN_ENV} instead"
        ) from None
    try:
        hook = NumberYoHook(args.conn_id)
        client = hook.get_client(pool_size=args.concurrency, **_limits(args))
        secret = hook.privacy_secret
    except NumberYoError:
        raise
    except Exception as exc:  # Airflow's own "connection not found" and friends
        raise ConfigurationError(
            f"cannot use Airflow connection {args.conn_id!r}: {type(exc).__name__}: {exc}"
        ) from None
    return {"client": client}, secret


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    """``--timeout`` / ``--max-response-mb`` as client arguments, when given."""
    limits: dict[str, Any] = {}
    if args.timeout is not None:
        limits["timeout"] = args.timeout
    if args.max_response_mb is not None:
        limits["max_response_mb"] = args.max_response_mb
    return limits


def _client_args(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """``run_sync`` keyword arguments for the API side, and the connection's privacy secret."""
    if args.conn_id:
        # Airflow may log to stdout while it starts; stdout is for the summary (or the JSON).
        with contextlib.redirect_stdout(sys.stderr):
            return _from_connection(args)
    token = resolve_token(hint=" or use --conn-id with an Airflow connection")
    base_url = resolve_base_url(args.base_url)
    options: dict[str, Any] = _limits(args)
    if args.max_retries is not None:
        if args.max_retries < 0:
            raise ConfigurationError(f"--max-retries must be >= 0, got {args.max_retries}")
        options["max_retries"] = args.max_retries
    return {"token": token, "base_url": base_url, "client_options": options}, None


def _configure_logging(verbose: bool) -> None:
    """Our log lines go to stderr only (stdout is the summary / the JSON), whatever logging
    Airflow set up when ``--conn-id`` imported it."""
    logger = logging.getLogger("numberyo_provider")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("numberyo: %(levelname)s: %(message)s"))
    logger.handlers = [handler]
    logger.propagate = False
    logger.disabled = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def handle(args: argparse.Namespace) -> int:
    # What we create holds numbers in clear; DuckDB's .wal follows only the umask.
    with private_umask():
        return _sync(args)


def _sync(args: argparse.Namespace) -> int:
    from numberyo_provider.progress import Progress
    from numberyo_provider.sync import run_sync

    client = None
    progress = Progress("sync", enabled=False if args.no_progress else None)
    try:
        check_warehouse_url(args.warehouse)  # a usage error writes nothing, landing included
        api, conn_secret = _client_args(args)
        client = api.get("client")
        _configure_logging(args.verbose)
        summary = run_sync(
            warehouse=args.warehouse,
            parquet_path=args.parquet_dir or default_parquet_dir(args.warehouse),
            full_refresh=args.full_refresh,
            concurrency=args.concurrency,
            privacy=resolve_privacy(args.privacy, connection_secret=conn_secret),
            lock_timeout=args.lock_timeout,
            progress=progress,
            **api,
        )
    except Exception as exc:  # ours, a database driver's, a bug: one line, no traceback
        progress.close()
        return report("sync", exc)
    except KeyboardInterrupt:
        progress.close()
        print(
            "numberyo sync: interrupted (Ctrl-C): nothing of this run was committed; the next "
            "run starts from the same watermark",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        if client is not None:
            client.close()
    progress.close()
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(summary.render())
    return EXIT_OK


__all__ = ["handle", "register"]
