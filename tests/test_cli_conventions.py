"""One CLI, one set of conventions (issue: ``check`` lacked ``-v`` and ``--max-retries``; errors
did not all start with ``numberyo <command>:``; messages named Python keywords such as ``sql=``;
``--base-url 127.0.0.1:8089`` suggested https; a resumed run looked fresh; the simulator could not
log its requests)."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import duckdb
import pytest

from numberyo_provider.cli import build_parser, main
from numberyo_provider.config import resolve_parquet_path

SHARED = {
    "--base-url",
    "--timeout",
    "--max-response-mb",
    "--max-retries",
    "--warehouse",
    "--parquet-path",
    "--parquet-dir",  # its 0.1 name, accepted until 0.3
    "--privacy",
    "--lock-timeout",
    "--json",
    "--no-progress",
    "--verbose",
}


def _options(command: str) -> dict[str, tuple[Any, str | None]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    out: dict[str, tuple[Any, str | None]] = {}
    for action in sub.choices[command]._actions:  # type: ignore[union-attr]
        for flag in action.option_strings:
            out[flag] = (action.default, action.help)
    return out


def test_sync_and_check_share_the_same_options_with_the_same_defaults() -> None:
    sync, check = _options("sync"), _options("check")
    for flag in SHARED:
        assert flag in sync and flag in check, flag
        assert sync[flag][0] == check[flag][0], flag
    assert "-v" in check and "--max-retries" in check


@pytest.fixture
def contacts(tmp_path: Path) -> str:
    db = tmp_path / "crm.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE contacts (phone VARCHAR)")
        con.executemany("INSERT INTO contacts VALUES (?)", [(f"+32456{i:06d}",) for i in range(5)])
    return f"duckdb:///{db}"


def test_messages_name_flags_not_python_keywords(
    contacts: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("NUMBERYO_API_TOKEN", "t")
    code = main(
        ["check", "--source", contacts, "--sql", "  ", "--type", "HLR",
         "--warehouse", f"duckdb:///{tmp_path / 'wh.duckdb'}"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("numberyo check: error:") and "--sql" in err
    assert "sql=" not in err and "column=" not in err


def test_a_loopback_base_url_without_scheme_suggests_http(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("NUMBERYO_API_TOKEN", "t")
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    assert main(["sync", "--warehouse", wh, "--base-url", "127.0.0.1:8089"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'http://127.0.0.1:8089'" in err and "--base-url" in err
    assert main(["sync", "--warehouse", wh, "--base-url", "api.numberyo.tech"]) == 2
    assert "did you mean 'https://api.numberyo.tech'" in capsys.readouterr().err
    assert not (tmp_path / "wh.duckdb").exists()


def test_a_rerun_that_resumes_todays_run_says_so(
    numberyo_simulator: Any,
    contacts: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("NUMBERYO_API_TOKEN", numberyo_simulator.token)
    monkeypatch.setenv("NUMBERYO_BASE_URL", numberyo_simulator.url)
    argv = ["check", "--source", contacts, "--table", "contacts", "--column", "phone",
            "--type", "HLR", "--warehouse", f"duckdb:///{tmp_path / 'wh.duckdb'}",
            "--parquet-path", str(tmp_path / "landing"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "resuming" not in capsys.readouterr().err
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "resuming today's run cli-HLR-" in err and "5 number(s) it already created" in err
    assert len(numberyo_simulator.sim.charges()) == 5
    assert main([*argv, "--run-id", "another"]) == 0
    assert "resuming" not in capsys.readouterr().err


def test_simulate_errors_start_with_the_command(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "numberyo_provider.cli", "simulate", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("numberyo simulate: error:"), done.stderr


@pytest.mark.slow
def test_the_simulator_logs_each_request_on_request() -> None:
    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "numberyo_provider.cli", "simulate", "--port", str(port), "-v",
         "--token", "sekret-token"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/api/checks?page=1",
                    headers={"Authorization": "Bearer sekret-token"},
                    timeout=2,
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert answer.status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "numberyo simulate: 127.0.0.1:" in err and '"GET /api/checks?page=1 HTTP/1.1" 200' in err
    assert "sekret-token" not in err


def test_a_command_run_in_process_gives_the_callers_logging_back(
    contacts: str, tmp_path: Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """``-v`` points our logger at stderr; after ``main()`` returns, records reach the caller's
    handlers again (a stale handler on a closed stderr once hid a later test's log records)."""
    import logging

    monkeypatch.delenv("NUMBERYO_API_TOKEN", raising=False)
    logger = logging.getLogger("numberyo_provider")
    before = (list(logger.handlers), logger.propagate, logger.level)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    argv = ["check", "--source", contacts, "--table", "contacts", "--column", "phone",
            "--type", "HLR", "--warehouse", wh, "--dry-run", "-v"]  # fmt: skip
    assert main(argv) == 0
    assert (list(logger.handlers), logger.propagate, logger.level) == before
    with caplog.at_level(logging.INFO, logger="numberyo_provider"):
        logging.getLogger("numberyo_provider.client").info("still seen")
    assert "still seen" in caplog.text


# --- renamed in 0.2 ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["sync", "check"])
def test_parquet_path_flag_and_its_old_name(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    base = [command, "--warehouse", "duckdb:///w.duckdb"]
    if command == "check":
        base += ["--source", "duckdb:///c.duckdb", "--table", "t", "--type", "HLR"]
    args = parser.parse_args([*base, "--parquet-path", "new"])
    assert args.parquet_path == "new"
    assert capsys.readouterr().err == ""

    args = parser.parse_args([*base, "--parquet-dir", "old"])
    assert args.parquet_path == "old"
    assert not hasattr(args, "parquet_dir")  # the mirror `numberyo check` read before 0.2 went
    assert capsys.readouterr().err == (
        f"numberyo {command}: warning: --parquet-dir is deprecated, use --parquet-path (the old "
        "name stops working in 0.3)\n"
    )

    args = parser.parse_args(base)
    assert args.parquet_path is None
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    help_text = sub.choices[command].format_help()
    assert "--parquet-path" in help_text and "--parquet-dir" not in help_text


def test_the_old_parquet_flag_still_lands_where_it_says(
    numberyo_simulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    numberyo_simulator.sim.seed_checks(3)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", numberyo_simulator.token)
    monkeypatch.setenv("NUMBERYO_BASE_URL", numberyo_simulator.url)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    code = main(
        ["sync", "--warehouse", wh, "--parquet-dir", str(tmp_path / "old"), "--no-progress"]
    )
    assert code == 0
    assert "--parquet-dir is deprecated, use --parquet-path" in capsys.readouterr().err
    assert list((tmp_path / "old").rglob("*.parquet"))


def test_the_old_parquet_variable_still_lands_where_it_says(
    numberyo_simulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """``NUMBERYO_PARQUET_DIR`` (renamed ``NUMBERYO_PARQUET_PATH`` in 0.2): one line on stderr, as
    for the old flag, and the files land where it says."""
    numberyo_simulator.sim.seed_checks(3)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", numberyo_simulator.token)
    monkeypatch.setenv("NUMBERYO_BASE_URL", numberyo_simulator.url)
    monkeypatch.delenv("NUMBERYO_PARQUET_PATH", raising=False)
    monkeypatch.setenv("NUMBERYO_PARQUET_DIR", str(tmp_path / "old"))
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    assert main(["sync", "--warehouse", wh, "--no-progress"]) == 0
    assert capsys.readouterr().err == (
        "numberyo sync: warning: the environment variable NUMBERYO_PARQUET_DIR is deprecated, use "
        "NUMBERYO_PARQUET_PATH (renamed in 0.2; the old name stops working in 0.3)\n"
    )
    assert list((tmp_path / "old").rglob("*.parquet"))

    monkeypatch.setenv("NUMBERYO_PARQUET_PATH", str(tmp_path / "new"))
    assert main(["sync", "--warehouse", wh, "--no-progress", "--full-refresh"]) == 0
    assert capsys.readouterr().err == ""
    assert list((tmp_path / "new").rglob("*.parquet"))


def test_only_our_deprecations_become_stderr_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from numberyo_provider.cli.options import deprecations_on_stderr

    with pytest.warns(UserWarning, match="someone else's"), deprecations_on_stderr("numberyo x"):
        warnings.warn("someone else's", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == ""
    with pytest.raises(RuntimeError), deprecations_on_stderr("numberyo x"):
        resolve_parquet_path(None, environ={"NUMBERYO_PARQUET_DIR": "old"})
        raise RuntimeError("the command failed afterwards")
    assert capsys.readouterr().err.startswith(
        "numberyo x: warning: the environment variable NUMBERYO_PARQUET_DIR is deprecated"
    )


def test_numberyo_check_reads_the_old_parquet_variable_with_one_line(
    numberyo_simulator: Any,
    contacts: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("NUMBERYO_API_TOKEN", numberyo_simulator.token)
    monkeypatch.setenv("NUMBERYO_BASE_URL", numberyo_simulator.url)
    monkeypatch.delenv("NUMBERYO_PARQUET_PATH", raising=False)
    monkeypatch.setenv("NUMBERYO_PARQUET_DIR", str(tmp_path / "old"))
    argv = ["check", "--source", contacts, "--table", "contacts", "--column", "phone",
            "--type", "HLR", "--warehouse", f"duckdb:///{tmp_path / 'wh.duckdb'}",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().err == (
        "numberyo check: warning: the environment variable NUMBERYO_PARQUET_DIR is deprecated, "
        "use NUMBERYO_PARQUET_PATH (renamed in 0.2; the old name stops working in 0.3)\n"
    )
    assert list((tmp_path / "old").rglob("*.parquet"))


_POOL_PROBE = """
import sys
from numberyo_provider import cli
# What pyarrow chose, printed by the command in place of a real one.
cli.main = lambda argv=None: print(__import__("pyarrow").default_memory_pool().backend_name) or 0
sys.exit(cli.console_main())
"""


@pytest.mark.parametrize(("preset", "expected"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_the_numberyo_process_uses_the_system_arrow_allocator_unless_told_otherwise(
    preset: str | None, expected: str
) -> None:
    """The console script picks pyarrow's system allocator before pyarrow loads (it gives freed
    memory back; docs/scaling.md); a value the environment already holds wins."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if preset is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = preset
    done = subprocess.run(
        [sys.executable, "-c", _POOL_PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_the_installed_numberyo_script_is_the_console_entry() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "numberyo"]
    assert script.value == "numberyo_provider.cli:console_main"
