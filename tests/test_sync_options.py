"""``SyncOptions``: a sync run's settings in one validated object (issue #11: ``run_sync`` took 19
parameters copied one by one into the run; the checks had ``CheckOptions``, the sync nothing).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from numberyo_provider.config import resolve_privacy, resolve_sync_options
from numberyo_provider.errors import ConfigurationError
from numberyo_provider.privacy import PrivacyPolicy
from numberyo_provider.sync import SyncOptions, run_sync
from numberyo_provider.sync import run as run_module

SECRET = "s" * 32


# --- the options ------------------------------------------------------------------------------


def test_defaults() -> None:
    options = SyncOptions(parquet_path="landing")
    assert options == SyncOptions(
        parquet_path="landing",
        full_refresh=False,
        concurrency=8,
        privacy=None,
        storage_options=None,
        lock_timeout=60.0,
        batch_size=1000,
        load_id=None,
        rows_per_file=250_000,
        max_buffered_rows=20_000,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.concurrency = 2  # type: ignore[misc]


def test_text_from_templates_is_coerced_by_the_shared_rules() -> None:
    options = SyncOptions(
        parquet_path=Path("landing"),  # type: ignore[arg-type]
        full_refresh="True",  # type: ignore[arg-type]
        concurrency="4",  # type: ignore[arg-type]
        lock_timeout="2.5",  # type: ignore[arg-type]
        batch_size=" 10 ",  # type: ignore[arg-type]
    )
    assert (options.parquet_path, options.full_refresh, options.concurrency) == ("landing", True, 4)
    assert (options.lock_timeout, options.batch_size) == (2.5, 10)
    assert SyncOptions(parquet_path="p", full_refresh="false").full_refresh is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"parquet_path": ""}, "no parquet path given"),
        ({"parquet_path": "   "}, "no parquet path given"),
        ({"parquet_path": None}, "no parquet path given"),
        ({"concurrency": 0}, "concurrency must be a whole number >= 1, got 0"),
        ({"concurrency": True}, "concurrency must be a whole number >= 1"),
        ({"concurrency": 2.5}, "concurrency must be a whole number"),
        ({"batch_size": "many"}, "batch_size must be a whole number, got 'many'"),
        ({"rows_per_file": 0}, "rows_per_file must be a whole number >= 1"),
        ({"max_buffered_rows": -1}, "max_buffered_rows must be a whole number >= 1"),
        ({"full_refresh": "maybe"}, "full_refresh must be true or false"),
        ({"lock_timeout": -1}, "lock_timeout must be a number of seconds >= 0"),
        ({"lock_timeout": float("nan")}, "lock_timeout must be a number of seconds >= 0"),
        ({"lock_timeout": "soon"}, "lock_timeout must be a number of seconds, got 'soon'"),
        ({"lock_timeout": False}, "lock_timeout must be a number of seconds"),
        ({"privacy": "mask"}, "privacy must be a PrivacyPolicy or None.*resolve_privacy"),
        ({"storage_options": "anon=true"}, "storage_options must be a mapping"),
        ({"load_id": "../escape"}, "load_id '../escape' cannot name files"),
        ({"load_id": ""}, "cannot name files"),
    ],
)
def test_a_bad_setting_is_a_clear_configuration_error(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SyncOptions(**{"parquet_path": "landing", **settings})


def test_storage_options_are_a_copy_and_empty_is_none() -> None:
    given = {"anon": True}
    options = SyncOptions(parquet_path="s3://b/p", storage_options=given)
    given["anon"] = False
    assert options.storage_options == {"anon": True}
    assert SyncOptions(parquet_path="p", storage_options={}).storage_options is None


def test_a_lock_timeout_of_zero_means_do_not_wait() -> None:
    assert SyncOptions(parquet_path="p", lock_timeout=0).lock_timeout == 0.0


# --- run_sync: the options object and the keyword form ------------------------------------------


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """run_sync up to the run: the _Run it builds is recorded, and executes nothing."""
    runs: list[Any] = []

    class Recorder:
        def __init__(self, **kwargs: Any) -> None:
            self.__dict__.update(kwargs)
            runs.append(self)

        def execute(self) -> Any:
            raise _Stop

        def fail(self, exc: BaseException) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(run_module, "_Run", Recorder)
    return runs


class _Stop(Exception):
    pass


class _Client:
    def close(self) -> None:  # a ready client is the caller's: never closed by run_sync
        raise AssertionError("closed")


def _run(*args: Any, **kwargs: Any) -> None:
    with pytest.raises(_Stop):
        run_sync(*args, client=_Client(), **kwargs)  # type: ignore[arg-type]


def test_the_keyword_form_and_the_options_form_build_the_same_run(captured: list[Any]) -> None:
    _run(warehouse="duckdb:///w.duckdb", parquet_path="landing", concurrency=3, full_refresh=True)
    _run(
        "duckdb:///w.duckdb", SyncOptions(parquet_path="landing", concurrency=3, full_refresh=True)
    )
    _run(
        "duckdb:///w.duckdb",
        options=SyncOptions(parquet_path="landing", concurrency=3, full_refresh=True),
    )
    keyword, positional, named = captured
    assert keyword.options == positional.options == named.options
    assert keyword.options.concurrency == 3 and keyword.options.full_refresh is True
    assert keyword.warehouse_url == "duckdb:///w.duckdb"
    assert keyword.load_id.startswith("sync-") and keyword.load_id != positional.load_id


def test_keywords_override_the_options_and_are_validated_again(captured: list[Any]) -> None:
    nightly = SyncOptions(parquet_path="landing", concurrency=3, load_id="nightly-1")
    _run("duckdb:///w.duckdb", nightly, full_refresh=True)
    [run] = captured
    assert run.options == dataclasses.replace(nightly, full_refresh=True)
    assert run.load_id == "nightly-1"
    assert nightly.full_refresh is False  # the caller's options are left alone
    with pytest.raises(ConfigurationError, match="concurrency"):
        _run("duckdb:///w.duckdb", nightly, concurrency=0)


def test_the_cancel_event_given_is_the_runs(captured: list[Any]) -> None:
    cancel = threading.Event()
    stages: list[str] = []
    _run("duckdb:///w.duckdb", SyncOptions(parquet_path="p"), cancel=cancel, on_stage=stages.append)
    [run] = captured
    assert run.cancel is cancel and run.on_stage == stages.append


def test_run_sync_usage_errors(captured: list[Any]) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'parquet_dir'"):
        _run("duckdb:///w.duckdb", parquet_dir="landing")
    with pytest.raises(TypeError, match="needs a parquet_path"):
        _run("duckdb:///w.duckdb")
    with pytest.raises(TypeError, match="options must be a SyncOptions"):
        _run("duckdb:///w.duckdb", {"parquet_path": "landing"})
    with pytest.raises(ConfigurationError, match="no warehouse given"):
        _run("", SyncOptions(parquet_path="landing"))
    with pytest.raises(ConfigurationError, match="no API token"):
        run_sync("duckdb:///w.duckdb", SyncOptions(parquet_path="landing"))
    assert captured == []  # nothing got as far as a run


def test_a_real_run_with_an_options_object(numberyo_simulator: Any, tmp_path: Path) -> None:
    numberyo_simulator.sim.seed_checks(12)
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    options = SyncOptions(
        parquet_path=str(tmp_path / "landing"),
        concurrency=2,
        batch_size=5,
        privacy=PrivacyPolicy("mask"),
        load_id="first-load",
    )
    summary = run_sync(
        wh,
        options,
        token=numberyo_simulator.token,
        base_url=numberyo_simulator.url,
        client_options={"sleep": lambda s: None},
    )
    assert summary.load_id == "first-load" and summary.checks_new == 12
    assert summary.parquet_path == str(tmp_path / "landing")
    import duckdb

    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        numbers = con.execute("SELECT phone_number FROM numberyo.checks").fetchall()
    assert len(numbers) == 12 and all("*" in str(n[0]) for n in numbers)  # privacy applied


# --- the one resolver ---------------------------------------------------------------------------


def test_resolve_sync_options_applies_the_configuration_rules(tmp_path: Path) -> None:
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    options = resolve_sync_options(warehouse=wh, environ={})
    assert options == SyncOptions(
        parquet_path=str(tmp_path / "numberyo-parquet"), privacy=PrivacyPolicy("keep")
    )
    env = {
        "NUMBERYO_PARQUET_PATH": "s3://bucket/landing",
        "NUMBERYO_PRIVACY_MODE": "hmac",
        "NUMBERYO_PRIVACY_SECRET": SECRET,
    }
    options = resolve_sync_options(
        warehouse=wh, environ=env, concurrency="4", full_refresh="true", lock_timeout=None
    )
    assert options.parquet_path == "s3://bucket/landing"
    assert options.privacy == resolve_privacy(environ=env)
    assert (options.concurrency, options.full_refresh, options.lock_timeout) == (4, True, 60.0)
    explicit = resolve_sync_options(warehouse=wh, parquet_path="here", privacy="mask", environ=env)
    assert explicit.parquet_path == "here"
    assert explicit.privacy is not None and explicit.privacy.mode == "mask"
    ready = PrivacyPolicy("hmac", "c" * 32)
    assert resolve_sync_options(parquet_path="here", privacy=ready, environ=env).privacy is ready


def test_the_cli_and_the_operator_build_the_same_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same inputs, one resolver: the flags of ``numberyo sync`` and the (rendered, text)
    arguments of NumberYoSyncOperator give equal SyncOptions."""
    from numberyo_provider.cli import build_parser
    from numberyo_provider.hooks.numberyo import NumberYoHook
    from numberyo_provider.operators.sync import NumberYoSyncOperator

    monkeypatch.setenv("NUMBERYO_PRIVACY_MODE", "mask")
    wh = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    landing = str(tmp_path / "landing")
    args = build_parser().parse_args(
        ["sync", "--warehouse", wh, "--parquet-path", landing, "--full-refresh",
         "--concurrency", "3", "--lock-timeout", "7"]
    )  # fmt: skip
    from_cli = resolve_sync_options(
        warehouse=args.warehouse,
        parquet_path=args.parquet_path,
        privacy=args.privacy,
        full_refresh=args.full_refresh,
        concurrency=args.concurrency,
        lock_timeout=args.lock_timeout,
    )
    op = NumberYoSyncOperator(
        task_id="s",
        warehouse=wh,
        parquet_path=landing,
        full_refresh="True",
        concurrency="3",
        lock_timeout=7,
    )
    from_operator = op._sync_options(NumberYoHook())
    assert from_cli == from_operator
    assert from_cli.privacy == PrivacyPolicy("mask") and from_cli.concurrency == 3
