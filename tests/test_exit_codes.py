"""Exit codes tell the truth, the same way from ``numberyo sync`` and ``numberyo check``.

Through the real command line (``main`` in-process, one real process for the slow case) against
the simulator over HTTP, or against a closed port where nothing listens.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from numberyo_provider.cli import main
from numberyo_provider.cli.errors import EXIT_FAILURE, EXIT_PARTIAL, EXIT_USAGE

NUMBERS = [f"+32 456 {i:06d}" for i in range(40)]
DIGITS = [n.replace(" ", "")[1:] for n in NUMBERS]


@pytest.fixture
def source(tmp_path: Path) -> str:
    """The numbers, in a directory of their own (the work directory must stay empty)."""
    folder = tmp_path / "source"
    folder.mkdir()
    with duckdb.connect(str(folder / "crm.duckdb")) as con:
        con.execute("CREATE TABLE contacts (phone VARCHAR)")
        con.executemany("INSERT INTO contacts VALUES (?)", [(n,) for n in NUMBERS])
        con.execute("CREATE TABLE few AS SELECT * FROM contacts LIMIT 4")
    return f"duckdb:///{folder / 'crm.duckdb'}"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The current directory of the command; relative paths (``duckdb:/x``) land here."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("NUMBERYO_PRIVACY_MODE", raising=False)
    monkeypatch.delenv("NUMBERYO_PRIVACY_SECRET", raising=False)
    # ``numberyo sync`` points the package logger at the stderr of the moment (capsys's here).
    logger = logging.getLogger("numberyo_provider")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield folder
    logger.handlers, logger.propagate, logger.level = saved[0], saved[1], saved[2]


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries of a refused connection happen at once (the waits only make the test slow)."""
    import numberyo_provider.cancellation as cancellation_module
    import numberyo_provider.cli.check as check_cli_module
    import numberyo_provider.sync.run as sync_module

    # numberyo check and run_sync each hold their own name of it.
    for module in (cancellation_module, check_cli_module, sync_module):
        monkeypatch.setattr(module, "cancellable_sleep", lambda stop: lambda seconds: None)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that refuses connections for the test: bound (so no other test's server can take
    it meanwhile) but never listening; closed afterwards (held for the whole session, they were
    reported as unclosed sockets at exit)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def check_args(source: str, work: Path, *extra: str) -> list[str]:
    """The command line; a flag in ``extra`` replaces the default one."""
    argv = [
        "check",
        "--source", source,
        "--table", "contacts",
        "--column", "phone",
        "--type", "hlr",
        "--warehouse", f"duckdb:///{work / 'wh.duckdb'}",
        "--parquet-path", str(work / "landing"),
        "--no-progress",
        "--reconcile-settle", "0.1",
    ]  # fmt: skip
    return _with(argv, list(extra))


def _with(argv: list[str], extra: list[str]) -> list[str]:
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv


def sync_args(work: Path, *extra: str) -> list[str]:
    argv = [
        "sync",
        "--warehouse", f"duckdb:///{work / 'wh.duckdb'}",
        "--parquet-path", str(work / "landing"),
        "--no-progress",
        "--max-retries", "0",
    ]  # fmt: skip
    return _with(argv, list(extra))


def verdict(err: str, command: str) -> str:
    """The one line the command printed about how it ended (client retry warnings aside)."""
    lines = [line for line in err.splitlines() if line.startswith(f"numberyo {command}:")]
    assert len(lines) == 1, err
    assert err.rstrip().splitlines()[-1] == lines[0], "the verdict must be the last line"
    assert "Traceback" not in err
    return lines[0]


def charged(server: Any) -> Counter[str]:
    return Counter(e.phone_number for e in server.sim.charges())


# --- an API nobody answers at -----------------------------------------------------------------


def test_nothing_listening_fails_both_commands_alike_and_says_no_credits_were_spent(
    source: str,
    work: Path,
    no_backoff: None,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Seen on main: retry lines, a summary with ``failed 40``, then exit 0."""
    monkeypatch.setenv("NUMBERYO_BASE_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("NUMBERYO_API_TOKEN", "tok-do-not-print")
    code = main(check_args(source, work, "--table", "few"))
    captured = capsys.readouterr()
    line = verdict(captured.err, "check")
    assert code == EXIT_FAILURE, line
    assert line.startswith("numberyo check: error: 4 number(s) failed")
    assert "could not connect" in line and "no credits spent, no check created" in line
    assert "tok-do-not-print" not in captured.out + captured.err

    sync_code = main(sync_args(work))
    sync_line = verdict(capsys.readouterr().err, "sync")
    assert sync_code == code == EXIT_FAILURE
    assert sync_line.startswith("numberyo sync: error:") and "could not connect" in sync_line


def test_a_run_that_stops_on_an_error_says_whether_money_was_spent(
    source: str,
    work: Path,
    no_backoff: None,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """40 refused connections: the checker stops after 20 in a row (an error, not a verdict on
    numbers); the line still says nothing was paid."""
    monkeypatch.setenv("NUMBERYO_BASE_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("NUMBERYO_API_TOKEN", "tok")
    code = main(check_args(source, work, "--concurrency", "1"))
    line = verdict(capsys.readouterr().err, "check")
    assert code == EXIT_FAILURE
    assert "in a row failed" in line and line.endswith("no credits spent, no check created")


@pytest.mark.slow
def test_nothing_listening_in_a_real_process(source: str, work: Path, closed_port: int) -> None:
    env = {
        **os.environ,
        "NUMBERYO_BASE_URL": f"http://127.0.0.1:{closed_port}",
        "NUMBERYO_API_TOKEN": "tok",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "numberyo_provider.cli",
            *check_args(source, work, "--table", "few"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_FAILURE, done.stderr
    assert "no credits spent" in verdict(done.stderr, "check")


# --- some numbers failed ----------------------------------------------------------------------


def test_some_numbers_failed_exits_4_naming_them_and_the_money(
    numberyo_simulator: Any,
    source: str,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NUMBERYO_BASE_URL", numberyo_simulator.url)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", numberyo_simulator.token)
    numberyo_simulator.sim.fail_next(3, 422, endpoint="create")  # three numbers refused
    code = main(check_args(source, work))
    captured = capsys.readouterr()
    line = verdict(captured.err, "check")
    assert code == EXIT_PARTIAL, line
    assert "failed 3" in captured.out
    assert line.startswith("numberyo check: error: 3 number(s) failed (first error: POST")
    assert "422" in line
    assert "37 check(s) created and loaded, credits spent 37" in line
    assert len(charged(numberyo_simulator)) == 37

    # The same command again retries the three, pays nothing twice, and is a success.
    assert main(check_args(source, work)) == 0
    assert charged(numberyo_simulator) == Counter(DIGITS)


# --- the same mistake, the same code, nothing written -----------------------------------------


def _written(work: Path) -> list[str]:
    return sorted(str(p.relative_to(work)) for p in work.rglob("*"))


MISTAKES: dict[str, tuple[dict[str, str], list[str], str]] = {
    # name: (environment, extra flags, what the line must name)
    "missing token": ({"NUMBERYO_API_TOKEN": ""}, [], "NUMBERYO_API_TOKEN"),
    "base url without scheme": ({}, ["--base-url", "ftp://api.example"], "http://"),
    "base url with /api": ({}, ["--base-url", "http://127.0.0.1:1/api"], "/api"),
    "duckdb url with one slash": ({}, ["--warehouse", "duckdb:/wh.duckdb"], "duckdb:///"),
    "warehouse not a url": ({}, ["--warehouse", "warehouse"], "warehouse"),
    "unknown dialect": (
        {},
        ["--warehouse", "postgresql+nodriver://u:pw-secret@127.0.0.1/db"],
        "postgresql+nodriver",
    ),
    "hmac without a secret": ({}, ["--privacy", "hmac"], "NUMBERYO_PRIVACY_SECRET"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_the_same_mistake_is_the_same_usage_error_from_both_and_writes_nothing(
    numberyo_simulator: Any,
    source: str,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mistake: str,
) -> None:
    env, extra, named = MISTAKES[mistake]
    monkeypatch.setenv("NUMBERYO_BASE_URL", numberyo_simulator.url)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", numberyo_simulator.token)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    lines = {}
    for command, argv in (
        ("check", check_args(source, work, *extra)),
        ("sync", sync_args(work, *extra)),
    ):
        code = main(argv)
        captured = capsys.readouterr()
        lines[command] = verdict(captured.err, command)
        assert code == EXIT_USAGE, (command, lines[command])
        assert lines[command].startswith(f"numberyo {command}: error:")
        assert named in lines[command], lines[command]
        assert "pw-secret" not in captured.err
        assert captured.out == ""  # no summary
        assert _written(work) == [], (command, mistake)  # no warehouse, ledger, landing
    assert numberyo_simulator.sim.requests() == []


@pytest.mark.parametrize(
    "extra",
    [
        ["--run-id", "x" * 300],
        ["--default-region", "XX"],
        ["--type", "CNAM"],
        ["--ledger", "sqlite:///:memory:"],
        ["--ledger", "mysql://u@h/db"],
    ],
)
def test_a_bad_check_flag_writes_nothing(
    numberyo_simulator: Any,
    source: str,
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
) -> None:
    monkeypatch.setenv("NUMBERYO_BASE_URL", numberyo_simulator.url)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", numberyo_simulator.token)
    assert main(check_args(source, work, *extra)) == EXIT_USAGE
    captured = capsys.readouterr()
    verdict(captured.err, "check")
    assert captured.out == ""
    assert _written(work) == []
    assert numberyo_simulator.sim.requests() == []


@pytest.mark.slow
def test_missing_token_and_bad_base_url_in_real_processes(
    numberyo_simulator: Any, source: str, work: Path
) -> None:
    """The same two mistakes, as a shell script would see them: same code, nothing written."""
    base = {**os.environ, "NUMBERYO_BASE_URL": numberyo_simulator.url}
    base.pop("NUMBERYO_PRIVACY_MODE", None)
    cases = {
        "missing token": ({**base, "NUMBERYO_API_TOKEN": ""}, []),
        "bad base url": (
            {**base, "NUMBERYO_API_TOKEN": numberyo_simulator.token},
            ["--base-url", "api.numberyo.tech"],
        ),
    }
    for name, (env, extra) in cases.items():
        codes = {}
        for command, argv in (
            ("check", check_args(source, work, *extra)),
            ("sync", sync_args(work, *extra)),
        ):
            done = subprocess.run(
                [sys.executable, "-m", "numberyo_provider.cli", *argv],
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=120,
            )
            verdict(done.stderr, command)
            codes[command] = done.returncode
            assert done.stdout == "" and _written(work) == [], (name, command)
        assert codes == {"check": EXIT_USAGE, "sync": EXIT_USAGE}, name
    assert numberyo_simulator.sim.requests() == []


def test_argparse_errors_are_usage_errors_from_both(
    source: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        [*check_args(source, work), "--concurrency", "0"],
        [*sync_args(work), "--concurrency", "0"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == EXIT_USAGE
    assert _written(work) == []


def test_help_documents_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("check", "sync"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for code in ("0 done", "1 failure", "2 usage error", "3 out of credits", "4 partial"):
            assert code in text, (command, code)
        assert "130 interrupted" in text


# --- the sentence itself ----------------------------------------------------------------------


def test_an_unknown_outcome_is_not_success_and_says_it_may_have_been_charged() -> None:
    from decimal import Decimal

    from numberyo_provider.checks import CheckSummary
    from numberyo_provider.checks.verdict import failed_numbers
    from numberyo_provider.cli.errors import exit_code

    done = CheckSummary(run_id="r", check_type="HLR", created=5, credits_spent=Decimal("5.00"))
    assert failed_numbers(done, loaded=True) is None
    unknown = CheckSummary(
        run_id="r",
        check_type="HLR",
        created=5,
        outcome_unknown=2,
        credits_spent=Decimal("5.00"),
        first_error="POST /api/checks: read timed out",
    )
    error = failed_numbers(unknown, loaded=False)
    assert error is not None and exit_code(error) == EXIT_PARTIAL
    text = str(error)
    assert text.startswith("2 outcome unknown (first error: POST /api/checks: read timed out)")
    assert "5 check(s) created but NOT loaded" in text
    assert "2 request(s) may have been charged" in text
    nothing = CheckSummary(run_id="r", check_type="HLR", outcome_unknown=1)
    error = failed_numbers(nothing, loaded=None)
    assert error is not None and exit_code(error) == EXIT_FAILURE
    assert "no credits spent" not in str(error)  # it may have been charged
    assert "no check known to be created; 1 request(s) may have been charged" in str(error)
