"""Run one contender of a race in its own process, released together with the others.

``python tests/barrier_run.py GO_FILE MODE JSON_ARGS``: imports everything first, waits until
``GO_FILE`` exists, then runs ``MODE`` and prints one JSON line. Process start-up (imports take a
second or two) would otherwise decide who runs first, and the "race" would be a queue.

Modes:

* ``cli``: ``numberyo_provider.cli.main(args["argv"])``; prints ``{"exit": code}``.
* ``claim``: claims ``args["numbers"]`` in batches of ``args["batch"]`` in the ledger at
  ``args["ledger"]`` as one owner; prints ``{"granted": [...]}``.
* ``operator``: ``NumberYoCreateChecksOperator(**args["operator"]).execute(context)`` with a
  context of ``args["dag_id"]`` and ``args["run_id"]`` (an Airflow retry beside its first try);
  prints ``{"summary": ...}`` or ``{"error": ...}``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any


def _wait(go_file: str, timeout: float = 60.0) -> None:
    with open(f"{go_file}.ready.{os.getpid()}", "w"):
        pass
    deadline = time.monotonic() + timeout
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            raise SystemExit("barrier never opened")
        time.sleep(0.002)


def _claim(args: dict[str, Any], go_file: str) -> dict[str, Any]:
    from numberyo_provider.checks.ledger import Ledger, new_owner, request_id

    ledger = Ledger(args["ledger"])
    owner = new_owner()
    numbers = list(args["numbers"])
    random.Random(os.getpid()).shuffle(numbers)
    batch = int(args["batch"])
    _wait(go_file)
    granted: list[str] = []
    for start in range(0, len(numbers), batch):
        part = numbers[start : start + batch]
        run_id = args["run_id"] or owner
        result = ledger.claim(
            run_id, "HLR", [(request_id(run_id, "HLR", d), d) for d in part], owner=owner
        )
        granted.extend(d for _, d in result.granted)
    ledger.close()
    return {"granted": granted}


def _operator(args: dict[str, Any], go_file: str) -> dict[str, Any]:
    from numberyo_provider.operators.check import NumberYoCreateChecksOperator

    class Dag:
        dag_id = args["dag_id"]

    class TaskInstance:
        def xcom_push(self, key: str, value: Any) -> None:
            return None

    op = NumberYoCreateChecksOperator(task_id="check", **args["operator"])
    context: Any = {"dag": Dag(), "run_id": args["run_id"], "ti": TaskInstance()}
    _wait(go_file)
    try:
        result = op.execute(context)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"summary": result["summary"]}


def main() -> None:
    go_file, mode, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    args = json.loads(raw)
    if mode == "cli":
        from numberyo_provider.cli import main as cli_main

        _wait(go_file)
        out: dict[str, Any] = {"exit": cli_main(args["argv"])}
    elif mode == "claim":
        out = _claim(args, go_file)
    elif mode == "operator":
        out = _operator(args, go_file)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
