"""``numberyo check`` end to end: a DuckDB contacts table, the simulator, a DuckDB warehouse."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from numberyo_provider.checks.ledger import CREATED, NOT_CHECKED, Ledger, default_ledger_url
from numberyo_provider.cli import main
from numberyo_provider.cli.check import EXIT_NO_CREDITS

NUMBERS = [f"+32 456 {i:06d}" for i in range(40)]
DIGITS = [n.replace(" ", "")[1:] for n in NUMBERS]


@pytest.fixture
def contacts(tmp_path: Path) -> str:
    db = tmp_path / "crm.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE contacts (id INTEGER, phone VARCHAR)")
        rows = [*NUMBERS, "0456 000 001", "garbage", None, "+32 12"]  # a duplicate, 3 invalid
        con.executemany("INSERT INTO contacts VALUES (?, ?)", list(enumerate(rows)))
    return f"duckdb:///{db}"


@pytest.fixture
def env(numberyo_simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NUMBERYO_BASE_URL", numberyo_simulator.url)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", numberyo_simulator.token)
    monkeypatch.delenv("NUMBERYO_PRIVACY_MODE", raising=False)
    return numberyo_simulator


def args(contacts: str, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "check",
        "--source", contacts,
        "--table", "contacts",
        "--column", "phone",
        "--type", "hlr",
        "--default-region", "BE",
        "--warehouse", f"duckdb:///{tmp_path / 'wh.duckdb'}",
        "--parquet-path", str(tmp_path / "landing"),
        "--no-progress",
        *extra,
    ]  # fmt: skip


def warehouse_rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def charged(server: Any) -> Counter[str]:
    return Counter(e.phone_number for e in server.sim.charges())


def test_checks_a_table_and_loads_results_requests_and_rejections(
    env: Any, contacts: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args(contacts, tmp_path)) == 0
    out = capsys.readouterr().out
    assert "created 40" in out and "invalid 3" in out and "duplicates 1" in out
    assert charged(env) == Counter(DIGITS)
    assert warehouse_rows(tmp_path, "SELECT count(*) FROM numberyo.checks") == [(40,)]
    assert warehouse_rows(tmp_path, "SELECT count(*) FROM numberyo.hlr_results") == [(40,)]
    assert warehouse_rows(
        tmp_path,
        "SELECT count(*) FROM numberyo.checks WHERE phone_number IN "
        f"({', '.join(repr(d) for d in DIGITS)})",
    ) == [(40,)]
    assert warehouse_rows(
        tmp_path, "SELECT status, count(*) FROM numberyo.check_requests GROUP BY status"
    ) == [("created", 40)]
    rejected = warehouse_rows(
        tmp_path, "SELECT raw_value FROM numberyo.rejected_numbers ORDER BY raw_value"
    )
    assert [r[0] for r in rejected] == ["", "+32 12", "garbage"]
    kinds = warehouse_rows(tmp_path, "SELECT kind, status FROM numberyo._loads")
    assert kinds == [("check", "committed")]

    # The same command again (same day: same run) sends nothing; a new run reuses fresh results.
    assert main(args(contacts, tmp_path)) == 0
    assert main(args(contacts, tmp_path, "--run-id", "tomorrow")) == 0
    assert "fresh skipped 40" in capsys.readouterr().out
    assert len(env.sim.charges()) == 40
    # --force checks again, once.
    assert main(args(contacts, tmp_path, "--run-id", "forced", "--force")) == 0
    assert charged(env) == Counter(DIGITS * 2)


def test_out_of_credits_exits_3_with_exact_counts(
    numberyo_simulator_factory: Any,
    contacts: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = numberyo_simulator_factory(credits=15, costs={"HLR": "1.00"}, latency_ms=5)
    monkeypatch.setenv("NUMBERYO_BASE_URL", server.url)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", server.token)
    code = main(args(contacts, tmp_path, "--concurrency", "8", "--run-id", "credits"))
    assert code == EXIT_NO_CREDITS
    err = capsys.readouterr().err
    assert "ran out of credits" in err and "25 number(s) not checked" in err
    assert len(charged(server)) == 15 and set(charged(server).values()) == {1}
    assert warehouse_rows(tmp_path, "SELECT count(*) FROM numberyo.checks") == [(15,)]
    statuses = dict(
        warehouse_rows(
            tmp_path, "SELECT status, count(*) FROM numberyo.check_requests GROUP BY status"
        )
    )
    assert statuses == {"created": 15, "not_checked": 25}
    # Topped up, the same run resumes: only the 25 others are charged.
    server.sim.set_credits(100)
    assert main(args(contacts, tmp_path, "--run-id", "credits")) == 0
    assert charged(server) == Counter(DIGITS)


def test_budget_flags_stop_cleanly(
    env: Any, contacts: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args(contacts, tmp_path, "--max-checks", "7")) == 0
    assert "stopped: max_checks (7) reached" in capsys.readouterr().out
    assert len(env.sim.charges()) == 7


def test_dry_run_sends_and_writes_nothing(
    env: Any, contacts: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args(contacts, tmp_path, "--dry-run")) == 0
    assert "40 number(s) would be sent" in capsys.readouterr().out
    assert [e for e in env.sim.requests() if e.method == "POST"] == []
    ledger = Ledger(default_ledger_url(f"duckdb:///{tmp_path / 'wh.duckdb'}"))
    try:
        assert ledger.rows() == []
    finally:
        ledger.close()


def test_workers_is_a_deprecated_alias_of_concurrency(
    contacts: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from numberyo_provider.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(args(contacts, tmp_path)).concurrency == 8
    assert parser.parse_args(args(contacts, tmp_path, "--concurrency", "3")).concurrency == 3
    assert capsys.readouterr().err == ""
    assert parser.parse_args(args(contacts, tmp_path, "--workers", "5")).concurrency == 5
    warning = capsys.readouterr().err
    assert warning == (
        "numberyo check: warning: --workers is deprecated, use --concurrency (the old name stops "
        "working in 0.3)\n"
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["check", "--help"])
    shown = capsys.readouterr().out
    assert "--concurrency" in shown and "--workers" not in shown  # documented: the new name only
    for flag in ("--workers", "--concurrency"):  # the alias is checked like the flag
        with pytest.raises(SystemExit) as info:
            parser.parse_args(args(contacts, tmp_path, flag, "257"))
        assert info.value.code == 2
        assert "expected 1 to 256 parallel POSTs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--table", "contacts; DROP TABLE contacts; --"], "contacts; DROP TABLE"),
        (["--table", 'con"tacts'], "con"),
        (["--column", "phone) FROM contacts; DROP TABLE contacts; --"], "column"),
        (["--sql", "SELECT 1"], "not both"),
        (["--type", "CNAM"], "unknown check type"),
        (["--default-region", "XX"], "default_region"),
    ],
)
def test_bad_input_is_a_usage_error_and_nothing_is_touched(
    env: Any,
    contacts: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    base = args(contacts, tmp_path)
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        if flag in base:
            base[base.index(flag) + 1] = value
        else:
            base += [flag, value]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.startswith("numberyo check: error:") and message in err
    assert "Traceback" not in err
    assert env.sim.requests() == []
    with duckdb.connect(contacts[len("duckdb:///") :], read_only=True) as con:
        assert con.execute("SELECT count(*) FROM contacts").fetchone() == (44,)


def test_missing_selection_and_token_are_usage_errors(
    env: Any,
    contacts: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_table = [a for a in args(contacts, tmp_path) if a not in ("--table", "contacts")]
    assert main(no_table) == 2
    assert "--table T --column C" in capsys.readouterr().err
    monkeypatch.delenv("NUMBERYO_API_TOKEN")
    assert main(args(contacts, tmp_path)) == 2
    assert "NUMBERYO_API_TOKEN" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["check", "--source", contacts])  # argparse: required flags missing
    assert info.value.code == 2


def test_a_bad_token_is_one_line_exit_1_and_never_printed(
    env: Any,
    contacts: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NUMBERYO_API_TOKEN", "sk-live-very-secret-token")
    assert main(args(contacts, tmp_path)) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "401" in lines[0]
    assert "very-secret" not in captured.err + captured.out
    assert env.sim.charges() == []


@pytest.mark.slow
def test_a_killed_cli_run_resumes_and_charges_each_number_once(
    numberyo_simulator_factory: Any, contacts: str, tmp_path: Path
) -> None:
    """SIGKILL the command mid-run (POSTs in flight, answers unrecorded), run it again."""
    server = numberyo_simulator_factory(latency_ms=40)
    environ = {
        **os.environ,
        "NUMBERYO_BASE_URL": server.url,
        "NUMBERYO_API_TOKEN": server.token,
    }
    command = [sys.executable, "-m", "numberyo_provider.cli", *args(contacts, tmp_path)]
    command += ["--concurrency", "4", "--reconcile-settle", "1"]
    child = subprocess.Popen(
        command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while len(server.sim.charges()) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    first = len(server.sim.charges())
    assert 10 <= first < 40, "the run was not killed mid-way"
    rerun = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert charged(server) == Counter(DIGITS)  # every number checked, each charged once
    assert warehouse_rows(tmp_path, "SELECT count(*) FROM numberyo.checks") == [(40,)]
    assert warehouse_rows(tmp_path, "SELECT count(*) FROM numberyo.hlr_results") == [(40,)]
    ledger = Ledger(default_ledger_url(f"duckdb:///{tmp_path / 'wh.duckdb'}"))
    try:
        counts = Counter(r.status for r in ledger.rows())
    finally:
        ledger.close()
    assert counts == Counter({CREATED: 40})
    assert NOT_CHECKED not in counts


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_loads_what_was_done_and_exits_130(
    numberyo_simulator_factory: Any, contacts: str, tmp_path: Path
) -> None:
    server = numberyo_simulator_factory(latency_ms=40)
    environ = {**os.environ, "NUMBERYO_BASE_URL": server.url, "NUMBERYO_API_TOKEN": server.token}
    command = [sys.executable, "-m", "numberyo_provider.cli", *args(contacts, tmp_path)]
    child = subprocess.Popen(
        [*command, "--concurrency", "2"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(server.sim.charges()) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "stopping" in err and "Traceback" not in err
    done = len(server.sim.charges())
    assert 5 <= done < 40
    time.sleep(0.3)
    assert len(server.sim.charges()) == done  # nothing was sent after the stop
    # Everything created was recorded and loaded; nothing is left "maybe sent".
    assert warehouse_rows(tmp_path, "SELECT count(*) FROM numberyo.checks") == [(done,)]
    ledger = Ledger(default_ledger_url(f"duckdb:///{tmp_path / 'wh.duckdb'}"))
    try:
        assert ledger.rows(status="pending") == []
        assert len(ledger.rows(status=CREATED)) == done
    finally:
        ledger.close()
    assert "interrupted" in out
