"""``numberyo sync``: bring a warehouse's copy of the account's check history up to date.

::

    export NUMBERYO_API_TOKEN=...            # or --conn-id with an Airflow connection
    numberyo sync --warehouse duckdb:///warehouse.duckdb

API address and token come from ``NUMBERYO_BASE_URL`` / ``NUMBERYO_API_TOKEN`` (or the Airflow
connection named by ``--conn-id``). Parquet files are landed under ``--parquet-path`` (default:
``NUMBERYO_PARQUET_PATH``, else beside a DuckDB warehouse file, else ``./numberyo-parquet``; the
old ``--parquet-dir`` and ``NUMBERYO_PARQUET_DIR`` still work until 0.3, with a warning). The
flags become one :class:`~numberyo_provider.sync.SyncOptions` through
:func:`~numberyo_provider.config.resolve_sync_options`, as the operator's arguments do. A progress
line is drawn on a terminal only; the summary goes to stdout (``--json`` for machines). Exit codes
are shared with ``numberyo check`` (:mod:`numberyo_provider.cli.errors`): 0 done; 1 failure (token
refused, API or warehouse unreachable, a lying server, a Parquet directory that cannot take files,
...); 2 usage error (bad flag, no token, bad ``--base-url`` or ``--warehouse``), found before
anything is written; 130 interrupted (Ctrl-C at any moment, the commit included: nothing of the
run is committed). A failure is one line on stderr; the token is never printed.

The sync itself (pyarrow) and the Airflow hook (Airflow, for ``--conn-id`` only) are imported by
the functions that use them: every ``numberyo`` command, ``simulate`` and ``--help`` included,
builds this command's flags.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from numberyo_provider.cli.errors import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    check_warehouse_url,
    report,
)
from numberyo_provider.cli.options import (
    add_api_options,
    add_output_options,
    client_options,
    configure_logging,
    deprecations_on_stderr,
    positive_int,
)
from numberyo_provider.config import (
    BASE_URL_ENV,
    TOKEN_ENV,
    resolve_base_url,
    resolve_sync_options,
    resolve_token,
)
from numberyo_provider.errors import ConfigurationError, NumberYoError
from numberyo_provider.private_files import private_umask
from numberyo_provider.progress import Progress


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="sync the account's check history into a warehouse (incremental)",
        description="Sync every check the account ran (and its results) into a warehouse: "
        "the first run backfills, later runs only read what is new. API address and token: "
        f"{BASE_URL_ENV} / {TOKEN_ENV}, or --conn-id. {EXIT_CODES_HELP}",
    )
    what = parser.add_argument_group("sync")
    what.add_argument(
        "--full-refresh",
        action="store_true",
        help="re-read every check and its results (the watermark is ignored)",
    )
    what.add_argument(
        "--concurrency",
        type=positive_int,
        default=8,
        metavar="N",
        help="parallel API requests (default 8)",
    )
    what.add_argument(
        "--conn-id",
        default=None,
        metavar="ID",
        help="take base URL, token and client extras from this Airflow connection instead of "
        "the environment",
    )
    add_api_options(parser, conn_id=True)
    add_output_options(parser, what="Parquet files")
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
        client = hook.get_client(pool_size=args.concurrency, **client_options(args))
        secret = hook.privacy_secret
    except NumberYoError:
        raise
    except Exception as exc:  # Airflow's own "connection not found" and friends
        raise ConfigurationError(
            f"cannot use Airflow connection {args.conn_id!r}: {type(exc).__name__}: {exc}"
        ) from None
    return {"client": client}, secret


def _client_args(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """``run_sync`` keyword arguments for the API side, and the connection's privacy secret."""
    if args.conn_id:
        # Airflow may log to stdout while it starts; stdout is for the summary (or the JSON).
        with contextlib.redirect_stdout(sys.stderr):
            return _from_connection(args)
    token = resolve_token(hint=" or use --conn-id with an Airflow connection")
    base_url = resolve_base_url(args.base_url)
    options = client_options(args)
    return {"token": token, "base_url": base_url, "client_options": options}, None


def handle(args: argparse.Namespace) -> int:
    # What we create holds numbers in clear; DuckDB's .wal follows only the umask.
    with private_umask():
        return _sync(args)


def _sync(args: argparse.Namespace) -> int:
    from numberyo_provider.sync import run_sync

    client = None
    progress = Progress("sync", enabled=False if args.no_progress else None)
    try:
        check_warehouse_url(args.warehouse)  # a usage error writes nothing, landing included
        api, conn_secret = _client_args(args)
        client = api.get("client")
        configure_logging(args.verbose)
        with deprecations_on_stderr("numberyo sync"):  # NUMBERYO_PARQUET_DIR, say
            options = resolve_sync_options(
                warehouse=args.warehouse,
                parquet_path=args.parquet_path,
                privacy=args.privacy,
                connection_secret=conn_secret,
                full_refresh=args.full_refresh,
                concurrency=args.concurrency,
                lock_timeout=args.lock_timeout,
            )
        summary = run_sync(args.warehouse, options, progress=progress, **api)
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
