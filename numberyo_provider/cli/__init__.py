"""The ``numberyo`` command: ``simulate``, ``sync``, ``check`` and ``status``.

Each subcommand lives in its own module with ``register(subparsers)``; handlers return the exit
code. Configuration comes from flags or ``NUMBERYO_BASE_URL`` / ``NUMBERYO_API_TOKEN``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from numberyo_provider import __version__

#: Subcommand modules, imported lazily so ``numberyo --version`` stays instant.
SUBCOMMANDS = ("simulate", "sync", "check", "status")

#: pyarrow's allocator, read once when pyarrow is first imported. The ``numberyo`` process sets
#: it to ``system`` unless the environment already names one: pyarrow's default (mimalloc)
#: keeps memory the sync's short-lived buffers freed (a sync into PostgreSQL peaked 18-28 MB
#: higher with it; docs/scaling.md#memory-of-a-sync). Library callers' processes are theirs.
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numberyo",
        description="NumberYo phone-number checks: simulate the API, sync check history into a "
        "warehouse, check numbers from a table, report a warehouse's status.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"numberyo_provider.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"numberyo_provider.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    logger = logging.getLogger("numberyo_provider")
    saved = (list(logger.handlers), logger.propagate, logger.level, logger.disabled)
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("numberyo: interrupted", file=sys.stderr)
        return 130
    finally:
        # A command points our logger at its stderr; called in-process (tests, notebooks), the
        # caller's logging is given back as it was.
        logger.handlers, logger.propagate, logger.level, logger.disabled = saved


def console_main() -> int:
    """The ``numberyo`` command in a process of its own: its process-wide defaults, then
    :func:`main`. Only a process we start may choose them, so in-process callers use ``main``."""
    if "pyarrow" not in sys.modules:  # else too late: pyarrow has chosen already
        os.environ.setdefault(ARROW_POOL_ENV, "system")
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
