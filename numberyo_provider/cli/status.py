"""``numberyo status``: what is in a warehouse and what happened to it (read-only).

::

    numberyo status --warehouse duckdb:///warehouse.duckdb
    numberyo status --warehouse postgresql+psycopg://user@db:5432/analytics --json

Reads ``_sync_state``, ``_loads``, the data tables and the request ledger (``--ledger``; default
the SQLite file beside a DuckDB warehouse, the warehouse database itself on PostgreSQL). Never
writes and never creates anything: DuckDB is opened read-only.

Exit codes, for alerting: 0 nothing needs attention; 3 something needs attention (the report says
what, each item with a code: ``last_load_failed``, ``failed_load_not_cleaned``,
``outcome_unknown``, ``claim_abandoned``, ``results_not_loaded``); 1 the report could not be read
(no such warehouse or ledger, unreachable database, not a numberyo warehouse); 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys

from numberyo_provider.cli.options import count, positive_int, seconds
from numberyo_provider.errors import ConfigurationError, NumberYoError
from numberyo_provider.status import DEFAULT_DAYS, DEFAULT_LOADS, read_status

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_ATTENTION = 3


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show a warehouse's watermark, last loads, ledger and credits (read-only)",
        description="What is in a warehouse and what happened: the watermark, the last loads "
        "(rows, duration, errors), failed loads not cleaned, paid requests whose outcome is "
        "unknown, claims held, credits spent per day and check type, checks whose results "
        "never loaded. Exit 0: all well; 3: something needs attention; 1: cannot read; "
        "2: bad usage.",
    )
    parser.add_argument(
        "--warehouse",
        required=True,
        metavar="URL",
        help="duckdb:///path/file.duckdb or any SQLAlchemy URL "
        "(e.g. postgresql+psycopg://user@host:5432/db)",
    )
    parser.add_argument(
        "--ledger",
        default=None,
        metavar="URL",
        help="the request ledger (SQLite or PostgreSQL URL); default: beside a DuckDB warehouse, "
        "the warehouse database on PostgreSQL (skipped when that default does not exist)",
    )
    parser.add_argument(
        "--loads",
        type=count,
        default=DEFAULT_LOADS,
        metavar="N",
        help=f"how many of the newest loads to show (default {DEFAULT_LOADS})",
    )
    parser.add_argument(
        "--days",
        type=positive_int,
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"credits spent over the last N days (default {DEFAULT_DAYS})",
    )
    parser.add_argument(
        "--lock-timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait while another process writes the DuckDB file (default 10)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        report = read_status(
            args.warehouse,
            ledger=args.ledger,
            loads=args.loads,
            days=args.days,
            lock_timeout=args.lock_timeout,
        )
    except ConfigurationError as exc:
        print(f"numberyo status: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except NumberYoError as exc:
        print(f"numberyo status: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        print(report.render())
    return EXIT_ATTENTION if report.needs_attention else EXIT_OK


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


__all__ = ["EXIT_ATTENTION", "EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "handle", "register"]
