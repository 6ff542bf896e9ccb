"""``numberyo simulate``: run the local NumberYo API simulator in the foreground.

Prints one line once the server answers, then serves until Ctrl-C or SIGTERM::

    NumberYo simulator listening on http://127.0.0.1:8089 (token: from --token, ...)

Scripts that start it with ``--port 0`` read the URL from that first stdout line (the first
word starting with ``http://``). The token's value is never printed unless it is the default
demo token.

Light on purpose: the server (FastAPI and uvicorn, the ``simulator`` extra) and the sample
contacts (DuckDB, phonenumbers) are imported when used, so that building the ``numberyo`` command
line costs neither (``tests/test_import_weight.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from numberyo_provider.cli.options import amount, count, finite, positive_int
from numberyo_provider.config import TOKEN_ENV

DEFAULT_TOKEN = "demo-token"  # noqa: S105 - the documented token of a local demo server


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1, got {text!r}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _milliseconds(text: str) -> float:
    return finite(text, "milliseconds", zero=True)


def _port(text: str) -> int:
    value = count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port between 0 and 65535, got {text!r}")
    return value


def _cost(text: str) -> tuple[str, Decimal]:
    check_type, sep, text_amount = text.partition("=")
    if not sep or check_type not in ("HLR", "Verify"):
        raise argparse.ArgumentTypeError(
            f"expected TYPE=AMOUNT with TYPE HLR or Verify (e.g. Verify=0.25), got {text!r}"
        )
    return check_type, amount(text_amount)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's flags (shared by ``numberyo simulate`` and ``python -m``)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=8089, help="port to listen on; 0 picks a free one (8089)"
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"API token the account accepts (default: ${TOKEN_ENV}, else {DEFAULT_TOKEN!r})",
    )
    parser.add_argument(
        "--credits", type=amount, default=Decimal(1000), help="starting balance (1000)"
    )
    parser.add_argument(
        "--cost",
        type=_cost,
        action="append",
        default=[],
        metavar="TYPE=AMOUNT",
        help="price of a check type, repeatable (HLR=1.00, Verify=0.50)",
    )
    parser.add_argument(
        "--seed-checks",
        type=count,
        default=250,
        help="existing checks in the account's history, free of charge (250)",
    )
    parser.add_argument(
        "--seed-span-days",
        type=positive_int,
        default=None,
        metavar="DAYS",
        help="spread the seeded history over DAYS days (e.g. 1095 for three years) with growing "
        "activity, quiet weekends and bulk jobs that create several checks a second; without "
        "it, checks are spread evenly over the past 30 days",
    )
    parser.add_argument(
        "--latency-ms",
        type=_milliseconds,
        default=0.0,
        help="time from a request's arrival to its answer, the server's work included (0)",
    )
    parser.add_argument(
        "--rate-limit-share",
        type=_share,
        default=0.0,
        help="share of requests answered 429 Too Many Attempts, 0..1 (0)",
    )
    parser.add_argument(
        "--retry-after-s",
        type=count,
        default=1,
        help="Retry-After seconds sent with those 429s (1)",
    )
    parser.add_argument(
        "--error-share",
        type=_share,
        default=0.0,
        help="share of requests answered 500 or 503, 0..1 (0)",
    )
    parser.add_argument(
        "--random-seed",
        type=count,
        default=0,
        help="seed of the history and of the random faults, for reproducible runs (0)",
    )
    parser.add_argument(
        "-v",
        "--access-log",
        action="store_true",
        help="log every request (client, method, path, status) to stderr: handy when wiring a "
        "DAG; the token is never logged",
    )
    parser.add_argument(
        "--write-contacts",
        metavar="PATH",
        default=None,
        help="write a sample table of 300 messy phone numbers (DuckDB file, table contacts, "
        "column phone; national numbers are Belgian) to PATH and exit, without serving",
    )


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser (``python -m numberyo_provider.simulator``)."""
    parser = argparse.ArgumentParser(
        prog="numberyo simulate",
        description="Run a local NumberYo API simulator (for demos, tests and benchmarks).",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` to the ``numberyo`` command."""
    parser = subparsers.add_parser(
        "simulate",
        help="run a local NumberYo API simulator",
        description="Run a local NumberYo API simulator (for demos, tests and benchmarks).",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def _token(args: argparse.Namespace) -> tuple[str, str]:
    """(token, how to describe it without showing a secret)."""
    if args.token:
        return args.token, "from --token"
    from_env = os.environ.get(TOKEN_ENV)
    if from_env:
        return from_env, f"from ${TOKEN_ENV}"
    return DEFAULT_TOKEN, f"{DEFAULT_TOKEN} (default)"


def write_sample_contacts(path: str) -> int:
    """The quick start's source table; 0 when written, 2 when ``path`` cannot be written."""
    import duckdb

    from numberyo_provider.simulator.contacts import DEFAULT_REGION, make_contacts, write_contacts

    contacts = make_contacts()
    try:
        write_contacts(Path(path), contacts)
    except FileExistsError:
        print(
            f"numberyo simulate: {path} already exists; give --write-contacts a new file name "
            "(it never overwrites a file)",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"numberyo simulate: cannot write {path}: {exc.strerror or exc}{where}",
            file=sys.stderr,
        )
        return 2
    except duckdb.Error as exc:  # e.g. a directory it may not write to
        print(f"numberyo simulate: cannot write {path}: {exc}", file=sys.stderr)
        return 2
    truth = contacts.truth()
    print(
        f"Wrote {truth['rows']} contacts to {path} (table contacts, column phone): "
        f"{truth['distinct_valid_numbers']} distinct numbers, {truth['duplicate_rows']} written "
        f"twice, {truth['invalid_rows']} not phone numbers; national numbers are "
        f"of region {DEFAULT_REGION} (check them with that default region)"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 on a clean stop, 2 when the server cannot start."""
    if args.write_contacts is not None:
        return write_sample_contacts(args.write_contacts)
    try:
        from numberyo_provider.simulator.server import SimulatorServer
    except ImportError as exc:
        print(f"numberyo simulate: error: {exc}", file=sys.stderr)
        return 2

    token, token_note = _token(args)
    kwargs: dict[str, Any] = {
        "token": token,
        "credits": args.credits,
        "costs": dict(args.cost) or None,
        "seed_checks": args.seed_checks,
        "seed_span_days": args.seed_span_days,
        "latency_ms": args.latency_ms,
        "rate_limit_share": args.rate_limit_share,
        "retry_after_s": args.retry_after_s,
        "error_share": args.error_share,
        "random_seed": args.random_seed,
    }
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.access_log:
        access = logging.getLogger("uvicorn.access")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("numberyo simulate: %(message)s"))
        access.handlers = [handler]
        access.setLevel(logging.INFO)
        access.propagate = False
    server = SimulatorServer(host=args.host, port=args.port, access_log=args.access_log, **kwargs)
    try:
        server.start()
    except OSError as exc:
        print(f"numberyo simulate: error: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"numberyo simulate: error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(
                f"numberyo simulate: warning: listening on {args.host}: anyone who can reach "
                "this address can use the simulator with its token",
                file=sys.stderr,
            )
        print(
            f"NumberYo simulator listening on {server.url} (token: {token_note}, "
            f"{args.credits} credits, {args.seed_checks} seeded checks); Ctrl-C to stop",
            flush=True,
        )
        while not stop.wait(0.5):
            if not server.running:
                print(
                    "numberyo simulate: error: the simulator stopped unexpectedly", file=sys.stderr
                )
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # Whoever read our output (a test, `| head`) may be gone by now: that is no error.
    with contextlib.suppress(BrokenPipeError):
        print("NumberYo simulator stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m numberyo_provider.simulator``."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
