"""``numberyo check``: check the phone numbers of a table, paying once per number at most.

::

    export NUMBERYO_API_TOKEN=...
    numberyo check --source duckdb:///crm.duckdb --table contacts --column phone \\
        --type HLR --default-region BE --max-credits 500 --warehouse duckdb:///warehouse.duckdb

Invalid numbers are never sent (they are listed in ``rejected_numbers``), duplicates are sent once,
numbers with a result of the type newer than ``--max-age-days`` (default 30) are skipped unless
``--force``. Every POST is written to a request ledger first (``--ledger``; default: a SQLite file
beside a DuckDB warehouse, the warehouse itself on PostgreSQL), so re-running the same command after
a crash or Ctrl-C resumes: nothing created is sent again, requests whose outcome is unknown are
looked up in the account's history first.

The run id defaults to ``cli-<type>-<UTC date>-<hash of source, table/column or query, region>``:
the same command on the same day is the same run (it resumes); on another day it is a new run, and
the ledger still keeps numbers created within ``--max-age-days`` from being charged again.

Exit codes (shared with ``numberyo sync``, see :mod:`numberyo_provider.cli.errors`): 0 done;
1 failure: the run could not do its job (API unreachable, token refused, every number sent failed);
2 usage error (bad flag, no token, bad URL): found before anything is written; 3 stopped because
the account ran out of credits (what was created is loaded, the rest is recorded ``not_checked``);
4 partial: checks were created but some numbers failed or their outcome stayed unknown (rerun the
same command to retry them, nothing is paid twice); 130 interrupted (Ctrl-C: the first stops
cleanly and loads what was done, a second one aborts at once). A failure prints one line on stderr
naming what failed (how many, the first error) and whether money was spent; never a traceback or
the token.

The engine, the ledger, the sources and the HTTP client (pyarrow, SQLAlchemy, requests) are
imported by the functions that use them: every ``numberyo`` command, ``simulate`` and ``--help``
included, builds this command's flags.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from numberyo_provider.api.models import canonical_check_type
from numberyo_provider.cancellation import cancellable_sleep
from numberyo_provider.checks.budget import DEFAULT_COST_ESTIMATE
from numberyo_provider.checks.verdict import failed_numbers, money_spent
from numberyo_provider.cli.errors import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_NO_CREDITS,
    EXIT_OK,
    check_warehouse_url,
    report,
)
from numberyo_provider.cli.options import (
    RenamedFlag,
    add_api_options,
    add_output_options,
    amount,
    client_options,
    configure_logging,
    count,
    days,
    deprecations_on_stderr,
    positive_int,
    seconds,
)
from numberyo_provider.config import (
    BASE_URL_ENV,
    TOKEN_ENV,
    resolve_base_url,
    resolve_parquet_path,
    resolve_privacy,
    resolve_token,
)
from numberyo_provider.errors import ConfigurationError
from numberyo_provider.private_files import private_umask
from numberyo_provider.progress import Progress

if TYPE_CHECKING:
    from numberyo_provider.checks.source import SourceSpec


def _concurrency(text: str) -> int:
    value = positive_int(text)
    if value > 256:
        raise argparse.ArgumentTypeError(f"expected 1 to 256 parallel POSTs, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check the phone numbers of a table (paid; never twice)",
        description="Check the phone numbers of a table or query (HLR or Verify) and load the "
        "results into a warehouse. Invalid numbers and duplicates are never sent, fresh results "
        "are reused, each POST is recorded first so a rerun never pays twice. API address and "
        f"token: {BASE_URL_ENV} / {TOKEN_ENV}. {EXIT_CODES_HELP}",
    )
    src = parser.add_argument_group("source")
    src.add_argument(
        "--source",
        required=True,
        metavar="URL",
        help="SQLAlchemy URL of the database holding the numbers, e.g. duckdb:///crm.duckdb or "
        "postgresql+psycopg://user@host/db",
    )
    src.add_argument("--table", metavar="T", help="table (or view) to read; with --column")
    src.add_argument("--column", metavar="C", help="column holding the numbers")
    src.add_argument("--schema", metavar="S", help="schema of --table")
    src.add_argument(
        "--sql",
        metavar="Q",
        help="a query returning the numbers (one column, or name it with --column); instead of "
        "--table",
    )
    what = parser.add_argument_group("checks")
    what.add_argument(
        "--type", required=True, metavar="HLR|Verify", help="check type (case does not matter)"
    )
    what.add_argument(
        "--default-region",
        metavar="CC",
        help="ISO country code for numbers written without a country code, e.g. BE",
    )
    what.add_argument(
        "--max-credits", type=amount, metavar="N", help="stop before spending more than this"
    )
    what.add_argument("--max-checks", type=count, metavar="N", help="create at most N checks")
    what.add_argument(
        "--cost-estimate",
        type=amount,
        default=None,
        metavar="N",
        help="credits assumed for the first check of the type while its price is unknown "
        "(with --max-credits; default 1.00)",
    )
    what.add_argument(
        "--max-age-days",
        type=days,
        default=30.0,
        metavar="D",
        help="reuse results newer than this (default 30)",
    )
    what.add_argument("--force", action="store_true", help="check numbers with fresh results too")
    what.add_argument(
        "--dry-run",
        action="store_true",
        help="read and clean the numbers, report how many would be sent; send nothing",
    )
    what.add_argument(
        "--concurrency",
        type=_concurrency,
        default=8,
        metavar="N",
        help="parallel POSTs (default 8)",
    )
    what.add_argument(  # renamed in 0.2
        "--workers",
        dest="concurrency",
        type=_concurrency,
        action=RenamedFlag,
        new="--concurrency",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    what.add_argument(
        "--run-id",
        metavar="ID",
        help="name of the run; rerun with the same id to resume it (default: derived from "
        "source, type and the UTC date)",
    )
    what.add_argument(
        "--reconcile-settle",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="before looking up requests whose outcome is unknown (a crash, a timeout), wait "
        "until they are this old, so one the server is still processing is not missed "
        "(default 30)",
    )
    add_api_options(parser)
    out = add_output_options(parser, what="results")
    out.add_argument(
        "--ledger",
        metavar="URL",
        help="SQLite or PostgreSQL URL of the request ledger (default: <warehouse file>"
        ".ledger.sqlite for DuckDB, the warehouse itself for PostgreSQL)",
    )
    parser.set_defaults(func=handle)


def _source_spec(args: argparse.Namespace) -> SourceSpec:
    from numberyo_provider.checks.source import SourceSpec

    if args.sql is not None and args.table is not None:
        raise ConfigurationError("give --table/--column or --sql, not both")
    if args.sql is None and (args.table is None or args.column is None):
        raise ConfigurationError("say what to read: --table T --column C, or --sql 'SELECT ...'")
    return SourceSpec(
        url=args.source, table=args.table, column=args.column, sql=args.sql, schema=args.schema
    )


def _say_if_resuming(ledger_url: str, run_id: str) -> None:
    """The default run id is per day: a second run of the same command the same day resumes the
    first. Say so, or its summary would read as if the results were fresh."""
    from numberyo_provider.checks.ledger import Ledger, existing_ledger

    if not existing_ledger(ledger_url):
        return
    try:
        with Ledger(ledger_url, create=False) as book:
            counts = book.counts(run_id)
    except Exception:  # no tables yet, or the database is down: run_check reports it
        return
    if counts:
        created = counts.get("created", 0)
        print(
            f"numberyo check: resuming today's run {run_id} ({created:,} number(s) it already "
            "created are not sent again); pass --run-id NAME to start a separate run",
            file=sys.stderr,
        )


def _default_run_id(args: argparse.Namespace, check_type: str) -> str:
    from numberyo_provider.checks import default_cli_run_id
    from numberyo_provider.warehouse import mask_url

    selection = f"{args.schema}.{args.table}.{args.column}" if args.sql is None else args.sql
    source = f"{mask_url(args.source)}\x1f{selection}\x1f{args.default_region or ''}"
    return default_cli_run_id(source, check_type)


def handle(args: argparse.Namespace) -> int:
    try:
        # What we create holds numbers in clear; DuckDB's .wal follows only the umask.
        with private_umask():
            return _run(args)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # ours, a database driver's, a bug: one line, no traceback
        return report("check", exc)


def _run(args: argparse.Namespace) -> int:
    from numberyo_provider.api.client import NumberYoClient
    from numberyo_provider.checks import CheckOptions, run_check
    from numberyo_provider.checks.ledger import default_ledger_url
    from numberyo_provider.checks.source import open_source

    spec = _source_spec(args)
    check_type = canonical_check_type(args.type)
    token = resolve_token(required=not args.dry_run)
    options = CheckOptions(
        check_type=check_type,
        run_id=args.run_id or _default_run_id(args, check_type),
        default_region=args.default_region,
        max_checks=args.max_checks,
        max_credits=args.max_credits,
        max_age=timedelta(days=args.max_age_days),
        force=args.force,
        concurrency=args.concurrency,
        dry_run=args.dry_run,
        reconcile_settle=timedelta(seconds=args.reconcile_settle),
        cost_estimate=(
            args.cost_estimate if args.cost_estimate is not None else DEFAULT_COST_ESTIMATE
        ),
    )
    privacy = resolve_privacy(args.privacy)
    # Names, query and URL are checked (read-only) before run_check creates any file.
    source = open_source(spec)
    base_url = resolve_base_url(args.base_url)
    with deprecations_on_stderr("numberyo check"):  # NUMBERYO_PARQUET_DIR, say
        parquet_path = resolve_parquet_path(args.parquet_path, warehouse=args.warehouse)
    stop = threading.Event()
    configure_logging(args.verbose)
    client = NumberYoClient(
        token or "dry-run",
        base_url,
        pool_size=args.concurrency,
        sleep=cancellable_sleep(stop),
        **client_options(args),
    )
    try:  # usage errors are found before anything is written (warehouse, ledger, landing)
        check_warehouse_url(args.warehouse)
        ledger_url = args.ledger or default_ledger_url(args.warehouse)
    except BaseException:
        client.close()
        raise
    if args.run_id is None and not args.dry_run:
        _say_if_resuming(ledger_url, options.run_id)
    progress = Progress("check", unit="checks", enabled=False if args.no_progress else None)
    holder: dict[str, Any] = {}

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        checker = holder.get("checker")
        if checker is None or holder.get("interrupted"):
            raise KeyboardInterrupt
        holder["interrupted"] = True
        print(
            "\nnumberyo check: stopping: no new checks are sent; the ones in flight are "
            "recorded and loaded (Ctrl-C again to abort at once)",
            file=sys.stderr,
        )
        checker.stop("interrupted (Ctrl-C)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        run = run_check(
            client=client,
            options=options,
            chunks=source,
            warehouse=args.warehouse,
            parquet_path=parquet_path,
            ledger=args.ledger,
            privacy=privacy,
            lock_timeout=args.lock_timeout,
            progress=progress,
            on_checker=lambda c: holder.__setitem__("checker", c),
            cancel=stop,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
        source.close()
        progress.close()
        client.close()
    summary = run.summary
    if args.json:
        data = summary.as_dict()
        data["run_id"] = options.run_id
        data["landed_files"] = len(run.files)
        data["loaded"] = run.load.rows if run.load is not None else None
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(summary.render())
        if run.load is not None:
            rows = ", ".join(f"{k} {v:,}" for k, v in sorted(run.load.rows.items()))
            print(f"  loaded into the warehouse: {rows}")
        print(f"  run id {options.run_id} (rerun with --run-id to resume it)")
    loaded = run.load is not None or args.dry_run
    if run.error is not None:
        if isinstance(run.error, KeyboardInterrupt):
            raise run.error
        return report("check", run.error, spent=money_spent(summary, loaded=loaded))
    if summary.stopped == "interrupted":
        return EXIT_INTERRUPTED
    if summary.stopped == "insufficient_credits":
        print(
            f"numberyo check: stopped: the account ran out of credits ({summary.stop_message}); "
            f"{summary.not_checked:,} number(s) not checked. Top up and rerun the same command.",
            file=sys.stderr,
        )
        return EXIT_NO_CREDITS
    failure = failed_numbers(summary, loaded=loaded)
    if failure is not None:
        return report("check", failure)
    return EXIT_OK


__all__ = ["EXIT_NO_CREDITS", "handle", "register"]
