"""Names of the checks side renamed in 0.2 (docs/upgrading.md): the old ones still work, warned."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.checks import (
    Checker,
    CheckOptions,
    commit_check_run,
    discover_landed_files,
    run_check,
)
from numberyo_provider.checks.ledger import Ledger


def test_check_options_max_workers_is_concurrency() -> None:
    with pytest.warns(DeprecationWarning, match="CheckOptions: max_workers is deprecated") as w:
        options = CheckOptions(check_type="HLR", run_id="r", max_workers=3)
    assert w[0].filename == __file__
    assert options.concurrency == 3
    with pytest.warns(DeprecationWarning, match="use concurrency"):
        assert options.max_workers == 3
    with pytest.raises(TypeError, match="concurrency= and its old name max_workers="):
        CheckOptions(check_type="HLR", run_id="r", max_workers=3, concurrency=4)
    assert CheckOptions(check_type="HLR", run_id="r", concurrency=2) == CheckOptions(
        check_type="HLR", run_id="r", concurrency=2
    )


def test_checker_stop_event_is_cancel(tmp_path: Path) -> None:
    class Sink:
        def write(self, table: object, data: object) -> None:
            return None

    event = threading.Event()
    client = NumberYoClient("token", "http://127.0.0.1:9")
    with Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}") as book:
        options = CheckOptions(check_type="HLR", run_id="r")
        with pytest.warns(DeprecationWarning, match="Checker: stop_event is deprecated"):
            checker = Checker(client, book, options, sink=Sink(), load_id="x", stop_event=event)
        assert checker.cancel is event
        with pytest.warns(DeprecationWarning, match="use cancel"):
            assert checker.stop_event is event
    client.close()


def test_run_check_and_commit_take_their_old_keywords(tmp_path: Path) -> None:
    """A dry run needs no API: the old keywords reach the run (files land under parquet_root)."""
    client = NumberYoClient("token", "http://127.0.0.1:9")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    event = threading.Event()
    options = CheckOptions(check_type="HLR", run_id="old-names", dry_run=True, force=True)
    with pytest.warns(DeprecationWarning, match="run_check: ") as w:
        run = run_check(
            client=client,
            options=options,
            chunks=[["+32456000001", "+32456000002"]],
            warehouse=warehouse,
            parquet_root=str(tmp_path / "landing"),
            ledger=f"sqlite:///{tmp_path / 'l.sqlite'}",
            lock_timeout_s=5.0,
            stop_event=event,
        )
    assert sorted(str(x.message).split(":")[1].split()[0] for x in w) == [
        "lock_timeout_s",
        "parquet_root",
        "stop_event",
    ]
    assert run.error is None and run.summary.would_send == 2
    with (
        Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}") as book,
        pytest.warns(DeprecationWarning, match="commit_check_run: ") as w,
    ):
        report = commit_check_run(
            warehouse=warehouse,
            ledger=book,
            run_id="old-names",
            files=[],
            started_at=run.summary.started_at,
            client=None,
            parquet_root=str(tmp_path / "landing"),
            lock_timeout_s=5.0,
            max_workers=2,
        )
    assert len(w) == 3 and report.repaired == 0
    with pytest.warns(DeprecationWarning, match="discover_landed_files: parquet_root is dep"):
        assert discover_landed_files(parquet_root=str(tmp_path / "landing"), load_id="x") == []
    client.close()


def test_the_old_names_of_the_number_hygiene() -> None:
    from numberyo_provider.checks import numbers

    with pytest.warns(DeprecationWarning, match="normalize is deprecated, use to_e164"):
        result = numbers.normalize("0456 78 90 23", "BE")
    assert result == numbers.to_e164("0456 78 90 23", "BE")
    with pytest.warns(DeprecationWarning, match="NormalizedNumber is deprecated, use E164Number"):
        from numberyo_provider.checks.numbers import NormalizedNumber  # type: ignore[attr-defined]
    assert NormalizedNumber is numbers.E164Number and isinstance(result, NormalizedNumber)
    with pytest.raises(AttributeError):
        numbers.no_such_name  # noqa: B018
