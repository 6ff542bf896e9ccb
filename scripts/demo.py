"""``make demo``: the whole NumberYo pipeline on a laptop, with no account and no money.

1. start the NumberYo simulator (a subprocess on a free loopback port: token ``demo-token``,
   1000 credits, 250 checks of history);
2. write a table of messy contacts (national and international formats, spaces, dashes, ``00``
   prefixes, duplicates, invalid values) to ``contacts.duckdb``, with the generator of
   ``numberyo simulate --write-contacts`` (``numberyo_provider/simulator/contacts.py``);
3. ``airflow db migrate`` into a private ``AIRFLOW_HOME`` (SQLite);
4. ``airflow dags test numberyo_sync``: deferrable sensor, then the history backfill;
5. ``airflow dags test numberyo_check_numbers``: hygiene, paid checks (never twice), load;
6. ``airflow dags test numberyo_dbt``: ``dbt build`` of the models and their tests;
7. a report read back from the warehouse and the simulator.

Everything goes under ``--workdir`` (default ``.demo/`` at the repository root, git-ignored):
``warehouse.duckdb`` (warehouse), ``parquet/`` (landing), ``contacts.duckdb`` (the source),
``airflow/`` (Airflow home), ``logs/`` (one log per step) and ``report.json``. Every run starts
clean: the work directory is deleted first (only one this script made, marked by a
``.numberyo-demo`` file), so the numbers are the same on every run.

The demo never touches the real API unless ``--real-api`` is given, even when
``NUMBERYO_API_TOKEN`` is set. With ``--real-api`` it syncs the account's history (free) and
creates real, paid checks for the synthetic contacts, capped by ``--max-credits`` (default 3).

Exit codes: 0 done, 1 a step failed (its log's tail is shown), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

# The generator is shared with `numberyo simulate --write-contacts` (one definition).
from numberyo_provider.simulator.contacts import DEFAULT_REGION, make_contacts, write_contacts

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO / ".demo"
MARKER = ".numberyo-demo"

#: Not ``numberyo.duckdb``: a file named like the schema makes ``numberyo.checks`` ambiguous.
WAREHOUSE_FILE = "warehouse.duckdb"
SIM_TOKEN = "demo-token"  # noqa: S105 - the simulator's documented demo token
SIM_CREDITS = 1000
SIM_SEED_CHECKS = 250
CONN_ID = "numberyo_default"
#: Spending cap of the check DAG: generous on the simulator, tiny on the real API.
SIM_MAX_CREDITS = Decimal(500)
REAL_MAX_CREDITS = Decimal(3)
#: Mapped check tasks on the simulator (each checks its share of the numbers).
SIM_SHARDS = 4

SYNC_DAG = "numberyo_sync"
CHECK_DAG = "numberyo_check_numbers"
DBT_DAG = "numberyo_dbt"

#: Airflow cluster policy of the demo's Airflow home: no task retries, so that a failing step is
#: reported at once instead of after the example DAGs' retry delays (minutes each).
NO_RETRIES_POLICY = '''"""Written by scripts/demo.py: fail fast in the demo (no task retries)."""


def task_policy(task):
    task.retries = 0
'''

STEP_TIMEOUT_S = 900
LOG_TAIL_LINES = 40
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class StepFailed(Exception):
    """A step failed; the message says what, ``log`` where the details are."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


class Simulator:
    """``python -m numberyo_provider.simulator`` on a free port; stopped on every exit path."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log: TextIO | None = None

    def start(self, env: Mapping[str, str], timeout_s: float = 60.0) -> str:
        self._log = self.log_path.open("w")
        args = [
            sys.executable,
            "-m",
            "numberyo_provider.simulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--token",
            SIM_TOKEN,
            "--credits",
            str(SIM_CREDITS),
            "--seed-checks",
            str(SIM_SEED_CHECKS),
        ]
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            args, stdout=self._log, stderr=subprocess.STDOUT, env=dict(env), cwd=REPO
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for word in self.log_path.read_text().split():
                if word.startswith("http://"):
                    self.url = word.rstrip(",;")
                    return self.url
            if self.proc.poll() is not None:
                raise StepFailed(
                    f"the simulator exited with code {self.proc.returncode}", self.log_path
                )
            time.sleep(0.1)
        raise StepFailed(f"the simulator did not start within {timeout_s:.0f} s", self.log_path)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


def run_logged(
    args: Sequence[str], log_path: Path, env: Mapping[str, str], timeout_s: float
) -> None:
    """Run a command with its output in ``log_path``; StepFailed on a non-zero exit."""
    with log_path.open("w") as log:
        log.write("$ " + " ".join(args) + "\n")
        log.flush()
        proc = subprocess.Popen(  # noqa: S603 - commands built by this script, no shell
            list(args), stdout=log, stderr=subprocess.STDOUT, env=dict(env), cwd=REPO
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _terminate(proc)
            raise StepFailed(f"timed out after {timeout_s:.0f} s", log_path) from None
        except BaseException:  # Ctrl-C: stop the child before leaving
            _terminate(proc)
            raise
    if code != 0:
        raise StepFailed(f"exited with code {code}", log_path)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Timeout)\b.*")


def last_error(path: Path) -> str | None:
    """The last exception line of a log (``SomeError: what``), the cause in most failures."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    found = [line for line in text if _ERROR_LINE.match(line)]
    return found[-1] if found else None


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------------------------
# The report: read back from the warehouse and the API
# --------------------------------------------------------------------------------------------

#: The report's SQL answer. ``{nb}`` is the loaded schema, ``{an}`` the dbt models' schema.
REACHABLE_BY_COUNTRY = """
SELECT coalesce(s.country_name, 'unknown') AS country,
       count(*) AS numbers,
       count(*) FILTER (WHERE s.reachable) AS reachable,
       round(100.0 * count(*) FILTER (WHERE s.reachable) / count(*), 1) AS reachable_pct
FROM {an}.numberyo_number_status AS s
WHERE s.phone_number IN (
    SELECT phone_number FROM {nb}.check_requests WHERE status = 'created')
GROUP BY 1
ORDER BY numbers DESC, country
""".strip()


def _account_total(base_url: str, token: str) -> int:
    from numberyo_provider.api.client import NumberYoClient

    with NumberYoClient(token, base_url, max_retries=2) as client:
        return client.list_checks(1).pagination.total


def read_report(
    warehouse: Path, contacts: Path, account_before: int, account_after: int
) -> dict[str, Any]:
    """Every number of the report, from SQL on the warehouse (and the source), nothing cached."""
    import duckdb

    from numberyo_provider import schema

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        db = con.execute("SELECT current_database()").fetchall()[0][0]
        names = {"nb": schema.SCHEMA_NAME, "an": "analytics"}
        con.execute(f"ATTACH '{contacts}' AS source (READ_ONLY)")

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return con.execute(sql.format(**names)).fetchall()

        def one(sql: str) -> Any:
            found = rows(sql)
            return found[0][0] if found else None

        run_ids = [r[0] for r in rows("SELECT DISTINCT run_id FROM {nb}.check_requests")]
        source_rows = one("SELECT count(*) FROM source.main.contacts")
        rejected_rows = one(
            "SELECT count(*) FROM source.main.contacts "
            "WHERE coalesce(phone, '') IN (SELECT raw_value FROM {nb}.rejected_numbers)"
        )
        statuses = dict(rows("SELECT status, count(*) FROM {nb}.check_requests GROUP BY 1"))
        credits = one(
            "SELECT coalesce(sum(c.user_cost), 0) FROM {nb}.checks AS c "
            "JOIN {nb}.check_requests AS r ON r.check_id = c.check_id "
            "WHERE r.status = 'created'"
        )
        tables = {t.name: one(f"SELECT count(*) FROM {{nb}}.{t.name}") for t in schema.ALL_TABLES}
        model_names = [
            r[0]
            for r in rows(
                "SELECT table_name FROM information_schema.tables "
                f"WHERE table_catalog = '{db}' AND table_schema = 'analytics' ORDER BY 1"
            )
        ]
        models = {m: one(f"SELECT count(*) FROM {{an}}.{m}") for m in model_names}
        loads = [
            {"kind": k, "status": s, "rows": json.loads(r) if r else {}}
            for k, s, r in rows("SELECT kind, status, rows FROM {nb}._loads ORDER BY started_at")
        ]
        by_country = [
            {"country": c, "numbers": n, "reachable": r, "reachable_pct": float(p)}
            for c, n, r, p in rows(REACHABLE_BY_COUNTRY)
        ]
    finally:
        con.close()
    return {
        "run_ids": run_ids,
        "source_rows": source_rows,
        "rejected_rows": rejected_rows,
        "requests": {k: int(v) for k, v in sorted(statuses.items())},
        "checks_created": int(statuses.get("created", 0)),
        "credits_spent": str(credits),
        "account_checks_before": account_before,
        "account_checks_after": account_after,
        "tables": tables,
        "models": models,
        "loads": loads,
        "reachable_by_country": by_country,
        "sql": REACHABLE_BY_COUNTRY.format(**names),
    }


def render_report(report: Mapping[str, Any], workdir: Path, real_api: bool) -> str:
    req = report["requests"]
    other = {k: v for k, v in req.items() if k != "created"}
    skipped = report["source_rows"] - report["rejected_rows"] - sum(req.values())
    credits = Decimal(str(report["credits_spent"])).quantize(Decimal("0.01"))
    where = "the real NumberYo API" if real_api else "the simulator"
    distinct_rejected = report["tables"].get("rejected_numbers", 0)
    lines = [
        "",
        f"What happened (read back from the warehouse and from {where})",
        f"  contacts read        {report['source_rows']:>7}  rows of contacts.phone",
        f"  rejected             {report['rejected_rows']:>7}  not phone numbers, never sent "
        f"({distinct_rejected} distinct values in numberyo.rejected_numbers)",
        f"  duplicates skipped   {skipped:>7}  the same number written another way",
        f"  checks created       {report['checks_created']:>7}  HLR, one per distinct number"
        + (f" (other requests: {other})" if other else ""),
        f"  credits spent        {credits!s:>7}  sum of numberyo.checks.user_cost",
        f"  account history      {report['account_checks_before']:>7} -> "
        f"{report['account_checks_after']} checks (GET /api/checks)",
        "",
        "Rows per table",
    ]
    names = [f"numberyo.{n}" for n in report["tables"]] + [
        f"analytics.{n}" for n in report["models"]
    ]
    width = max(len(n) for n in names) + 2
    counts = [*report["tables"].values(), *report["models"].values()]
    for name, count in zip(names, counts, strict=True):
        lines.append(f"  {name:<{width}}{count:>7}")
    lines += ["", "Loads (numberyo._loads)"]
    for load in report["loads"]:
        rows = ", ".join(f"{k} {v}" for k, v in sorted(load["rows"].items()) if v)
        lines.append(f"  {load['kind']:<6} {load['status']:<10} {rows}")
    lines += [
        "",
        "Reachable share of the contacts' numbers, per country (dbt mart numberyo_number_status):",
        "",
        "  " + str(report["sql"]).replace("\n", "\n  "),
        "",
        f"  {'country':<18} {'numbers':>7} {'reachable':>9} {'share':>7}",
    ]
    for row in report["reachable_by_country"]:
        lines.append(
            f"  {row['country']:<18} {row['numbers']:>7} {row['reachable']:>9} "
            f"{row['reachable_pct']:>6.1f}%"
        )
    rel = _display(workdir)
    lines += [
        "",
        f"Query it yourself: {rel}/{WAREHOUSE_FILE}, schemas numberyo (loaded) and analytics (dbt)",
        "(DuckDB has one writer per file: close other connections before the next load).",
        f"Landed Parquet: {rel}/parquet/   Logs of every step: {rel}/logs/",
    ]
    return "\n".join(lines)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------


@dataclass
class Demo:
    workdir: Path
    real_api: bool
    max_credits: Decimal
    contacts_rows: int
    step_timeout_s: float
    out: TextIO = sys.stdout
    timings: dict[str, float] = field(default_factory=dict)
    _step_no: int = 0
    steps_total: int = 7

    @property
    def warehouse(self) -> Path:
        return self.workdir / WAREHOUSE_FILE

    @property
    def contacts_db(self) -> Path:
        return self.workdir / "contacts.duckdb"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    @contextmanager
    def step(self, title: str) -> Iterator[dict[str, str]]:
        """Print the step, time it, and a note the step may set."""
        self._step_no += 1
        label = f"[{self._step_no}/{self.steps_total}] {title}"
        print(f"{label:<58}", end="", file=self.out, flush=True)
        note: dict[str, str] = {}
        started = time.monotonic()
        try:
            yield note
        except BaseException as exc:
            what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            print(f"{what} after {time.monotonic() - started:.1f} s", file=self.out, flush=True)
            raise
        seconds = time.monotonic() - started
        self.timings[title] = round(seconds, 2)
        suffix = f"  {note['text']}" if note.get("text") else ""
        print(f"{seconds:6.1f} s{suffix}", file=self.out, flush=True)

    def prepare_workdir(self) -> None:
        wd = self.workdir
        if wd.exists():
            if any(wd.iterdir()) and not (wd / MARKER).exists():
                raise StepFailed(
                    f"{wd} exists and was not made by the demo (no {MARKER} file): choose "
                    "another --workdir or remove it yourself"
                )
            shutil.rmtree(wd)
        self.logs.mkdir(parents=True)
        (wd / MARKER).write_text("made by scripts/demo.py; deleted at the start of every run\n")
        config = wd / "airflow" / "config"
        config.mkdir(parents=True)
        (config / "airflow_local_settings.py").write_text(NO_RETRIES_POLICY)

    def base_env(self) -> dict[str, str]:
        """The parent's environment without any Airflow, dbt or NumberYo setting that could
        point a step elsewhere (a real token, a production metadata DB)."""
        drop = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "NUMBERYO_", "DBT_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.pop("AIRFLOW_HOME", None)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def airflow_env(self, base_url: str, token: str) -> dict[str, str]:
        home = self.workdir / "airflow"
        conn = {
            "conn_type": "numberyo",
            "host": base_url,
            "password": token,
            "extra": {"max_retries": 5, "timeout": 30},
        }
        return {
            **self.base_env(),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW_CONN_NUMBERYO_DEFAULT": json.dumps(conn),
            "NUMBERYO_CONN_ID": CONN_ID,
            "NUMBERYO_WAREHOUSE_URL": f"duckdb:///{self.warehouse}",
            "NUMBERYO_PARQUET_PATH": str(self.workdir / "parquet"),
            "NUMBERYO_CONTACTS_URL": f"duckdb:///{self.contacts_db}",
            "NUMBERYO_DBT_PROJECT_DIR": str(REPO / "dbt"),
            "NUMBERYO_DBT_PROFILES_DIR": str(REPO / "dbt"),
            "DBT_TARGET_PATH": str(self.workdir / "dbt" / "target"),
            "DBT_LOG_PATH": str(self.workdir / "dbt" / "logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }

    def check_conf(self) -> dict[str, Any]:
        """The check DAG's Params for this run. Its ``max_credits`` is per shard task: the
        demo's total cap is split between the shards (one shard on the real API)."""
        shards = 1 if self.real_api else SIM_SHARDS
        return {
            "check_type": "HLR",
            "default_region": DEFAULT_REGION,
            "table": "contacts",
            "column": "phone",
            "shards": shards,
            "max_credits": float(self.max_credits / shards),
        }

    def airflow(self, name: str, args: Sequence[str], env: Mapping[str, str]) -> None:
        run_logged(
            [sys.executable, "-m", "airflow", *args],
            self.logs / f"{name}.log",
            env,
            self.step_timeout_s,
        )

    def run(self) -> dict[str, Any]:
        mode = "the REAL NumberYo API" if self.real_api else "a local NumberYo simulator"
        self.say(f"NumberYo demo: Airflow 3 + DuckDB + Parquet + dbt against {mode}")
        self.say(f"  work directory {_display(self.workdir)} (deleted and made afresh)")
        self.say()
        simulator = Simulator(self.workdir / "logs" / "simulator.log")
        self.prepare_workdir()
        try:
            with self.step("Start the NumberYo simulator") as note:
                if self.real_api:
                    base_url = (
                        os.environ.get("NUMBERYO_BASE_URL", "").strip()
                        or "https://www.numberyo.tech"
                    )
                    token = os.environ["NUMBERYO_API_TOKEN"].strip()
                    note["text"] = f"skipped (--real-api: {base_url})"
                else:
                    base_url = simulator.start(self.base_env())
                    token = SIM_TOKEN
                    note["text"] = (
                        f"{base_url} ({SIM_SEED_CHECKS} checks of history, {SIM_CREDITS} credits)"
                    )
                account_before = _account_total(base_url, token)
            env = self.airflow_env(base_url, token)

            with self.step(f"Write {self.contacts_rows} messy contacts") as note:
                contacts = make_contacts(self.contacts_rows)
                write_contacts(self.contacts_db, contacts)
                truth = contacts.truth()
                note["text"] = (
                    f"{_display(self.contacts_db)}: {truth['distinct_valid_numbers']} numbers, "
                    f"{truth['duplicate_rows']} written twice, {truth['invalid_rows']} invalid"
                )

            with self.step("airflow db migrate (SQLite metadata)"):
                self.airflow("airflow-db-migrate", ["db", "migrate"], env)

            with self.step(f"airflow dags test {SYNC_DAG}") as note:
                if account_before == 0:
                    note["text"] = "skipped: the account has no checks to sync yet"
                else:
                    self.airflow(SYNC_DAG, ["dags", "test", SYNC_DAG], env)

            with self.step(f"airflow dags test {CHECK_DAG}"):
                conf = json.dumps(self.check_conf())
                self.airflow(CHECK_DAG, ["dags", "test", CHECK_DAG, "--conf", conf], env)

            with self.step(f"airflow dags test {DBT_DAG}"):
                self.airflow(DBT_DAG, ["dags", "test", DBT_DAG], env)

            with self.step("Read the report back"):
                account_after = _account_total(base_url, token)
                report = read_report(
                    self.warehouse, self.contacts_db, account_before, account_after
                )
        finally:
            simulator.stop()
        report["generated"] = truth
        report["real_api"] = self.real_api
        report["timings_s"] = self.timings
        report["warehouse"] = str(self.warehouse)
        (self.workdir / "report.json").write_text(json.dumps(report, indent=2, default=str))
        self.say(render_report(report, self.workdir, self.real_api))
        total = sum(self.timings.values())
        self.say(f"\nDone in {total:.0f} s. Machine-readable: {_display(self.workdir)}/report.json")
        return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/demo.py",
        description="Run the whole NumberYo pipeline (simulator, Airflow DAGs, DuckDB, dbt) and "
        "print what it did.",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where everything goes; deleted first if the demo made it "
        f"(default {DEFAULT_WORKDIR})",
    )
    parser.add_argument(
        "--real-api",
        action="store_true",
        help="use the real NumberYo API with NUMBERYO_API_TOKEN instead of the simulator: "
        "CHECKS COST MONEY",
    )
    parser.add_argument(
        "--max-credits",
        type=_credits,
        default=None,
        help=f"spending cap of the check DAG (default {SIM_MAX_CREDITS} on the simulator, "
        f"{REAL_MAX_CREDITS} with --real-api)",
    )
    parser.add_argument(
        "--contacts",
        type=int,
        default=300,
        help="rows of the generated contacts table (default 300)",
    )
    parser.add_argument(
        "--step-timeout",
        type=float,
        default=STEP_TIMEOUT_S,
        help=f"seconds one step may take (default {STEP_TIMEOUT_S})",
    )
    args = parser.parse_args(argv)
    if args.contacts < 20:
        parser.error("--contacts must be at least 20")
    return args


def _credits(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"expected a number of credits, got {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of credits >= 0, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    token_set = bool(os.environ.get("NUMBERYO_API_TOKEN", "").strip())
    if args.real_api:
        if not token_set:
            print(
                "demo: --real-api needs NUMBERYO_API_TOKEN (generate one on the NumberYo "
                "dashboard); without --real-api the demo uses the local simulator",
                file=sys.stderr,
            )
            return EXIT_USAGE
        cap = args.max_credits if args.max_credits is not None else REAL_MAX_CREDITS
        bar = "!" * 78
        print(
            f"{bar}\n!! --real-api: this demo talks to the REAL NumberYo API. Checks COST MONEY.\n"
            f"!! It syncs your account's check history (free) and creates HLR checks for\n"
            f"!! SYNTHETIC numbers (they may belong to real people), spending at most {cap}\n"
            f"!! credits (--max-credits; 0 creates none).\n{bar}\n",
            file=sys.stderr,
            flush=True,
        )
    else:
        cap = args.max_credits if args.max_credits is not None else SIM_MAX_CREDITS
        if token_set:
            print(
                "demo: NUMBERYO_API_TOKEN is set but NOT used: the demo runs against the local "
                "simulator (pass --real-api to use the real API; checks cost money)\n",
                flush=True,
            )
    demo = Demo(
        workdir=args.workdir.expanduser().resolve(),
        real_api=args.real_api,
        max_credits=cap,
        contacts_rows=args.contacts,
        step_timeout_s=args.step_timeout,
    )
    try:
        demo.run()
    except StepFailed as exc:
        print(f"\ndemo: step failed: {exc}", file=sys.stderr)
        if exc.log is not None:
            print(f"--- last lines of {exc.log} ---\n{tail(exc.log)}\n---", file=sys.stderr)
            cause = last_error(exc.log)
            if cause:
                print(f"demo: the error: {cause}", file=sys.stderr)
            print(f"demo: the whole log: {exc.log}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\ndemo: interrupted; the simulator was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug or an environment problem: one clear line, then the why
        print(f"\ndemo: step failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
