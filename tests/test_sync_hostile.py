"""``numberyo sync`` against a server that lies: pages that repeat, totals that do not add up,
pages beyond the total, a shrinking total, a check type this version does not know.

Each server here is scripted on ``tests/hostile_server.py`` (real HTTP on loopback) and each test
runs the real command (``numberyo_provider.cli.main``) into a real DuckDB file, then looks at the
exit code, the one line on stderr and the warehouse. A safety valve in every endless server ends
the listing after ``VALVE`` requests with an empty page, so code that does not stop by itself
ends (with exit 0 and too many requests) instead of hanging.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from api_reference import HLR_RESULT
from hostile_server import HostileServer, Reply, Request

from numberyo_provider.cli import main

PAGE = 10
VALVE = 200
T0 = datetime(2025, 3, 30, 12, 0, tzinfo=UTC)


def make_checks(
    n: int, first_id: int = 1, types: tuple[str, ...] = ("HLR",)
) -> list[dict[str, Any]]:
    """``n`` checks, newest first (the API's order): ids ``first_id + n - 1`` down to
    ``first_id``, one minute apart."""
    out = []
    for i in reversed(range(n)):
        cid = first_id + i
        out.append(
            {
                "id": cid,
                "type": types[cid % len(types)],
                "created_at": (T0 + timedelta(minutes=cid)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
        )
    return out


def page_reply(number: int, items: list[dict[str, Any]], total: int, total_pages: int) -> Reply:
    return Reply.json(
        {
            "checks": items,
            "pagination": {"current_page": number, "total_pages": total_pages, "total": total},
        }
    )


def results_reply(check: dict[str, Any]) -> Reply:
    if check["type"] == "HLR":
        return Reply.json({"type": "HLR", "results": [HLR_RESULT]})
    if check["type"] == "Verify":
        return Reply.json(
            {"type": "Verify", "results": [{"e164_format": "+32456789023", "valid_number": True}]}
        )
    return Reply.json(
        {
            "type": check["type"],
            "results": [{"address": f"user{check['id']}@example.com", "deliverable": True}],
            "note": {"nested": [1, 2, {"deep": None}]},
        }
    )


Lister = Callable[[int, Request], Reply]


def serve(checks: list[dict[str, Any]], lister: Lister) -> HostileServer:
    """A server whose list endpoint is ``lister(page, request)`` and whose results endpoint
    answers every check of ``checks`` (404 for others)."""
    by_id = {c["id"]: c for c in checks}

    def route(req: Request) -> Reply:
        if req.path == "/api/checks":
            return lister(int(req.param("page", "1") or 1), req)
        parts = req.path.strip("/").split("/")
        if len(parts) == 4 and parts[3] == "results" and int(parts[2]) in by_id:
            return results_reply(by_id[int(parts[2])])
        return Reply.json({"message": "Not found."}, status=404)

    return HostileServer(route)


def honest(checks: list[dict[str, Any]]) -> Lister:
    total = len(checks)
    pages = max(1, -(-total // PAGE))

    def lister(number: int, req: Request) -> Reply:
        return page_reply(number, checks[(number - 1) * PAGE : number * PAGE], total, pages)

    return lister


@pytest.fixture
def run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """``run(server, *extra_args)`` -> (exit code, stdout, stderr) of ``numberyo sync``."""
    monkeypatch.setenv("NUMBERYO_API_TOKEN", "hostile-test-token")
    monkeypatch.delenv("NUMBERYO_PRIVACY_MODE", raising=False)

    def invoke(server: HostileServer, *extra: str) -> tuple[int, str, str]:
        monkeypatch.setenv("NUMBERYO_BASE_URL", server.url)
        code = main(
            [
                "sync",
                "--warehouse",
                f"duckdb:///{tmp_path / 'wh.duckdb'}",
                "--parquet-path",
                str(tmp_path / "landing"),
                "--no-progress",
                "--max-retries",
                "0",
                *extra,
            ]
        )
        out, err = capsys.readouterr()
        return code, out, err

    yield invoke


def table(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    path = tmp_path / "wh.duckdb"
    if not path.exists():
        return []
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def loaded_ids(tmp_path: Path) -> list[int]:
    try:
        rows = table(tmp_path, "SELECT check_id FROM numberyo.checks ORDER BY check_id")
    except duckdb.CatalogException:
        return []
    return [r[0] for r in rows]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("numberyo sync: error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]


def list_requests(server: HostileServer) -> int:
    return server.count("GET", "/api/checks")


# --- pagination checked against itself ----------------------------------------------------


@pytest.mark.parametrize("total", [10**9, 10**10])
def test_pages_that_repeat_stop_with_a_clear_error(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path, total: int
) -> None:
    """Seen: every page held the same 10 checks, current_page echoed, total_pages 10^9: more
    than 160,000 requests in 3 minutes."""
    checks = make_checks(PAGE)

    def lister(number: int, req: Request) -> Reply:
        items = checks if number < VALVE else []
        return page_reply(number, items, total, 10**9)

    with serve(checks, lister) as server:
        code, _out, err = run(server)
        requests = list_requests(server)
    assert code == 1
    line = one_error_line(err)
    assert "repeats checks already listed" in line and "nothing was committed" in line
    assert requests <= 3 + 8  # two pages of slack, plus what was in flight
    assert loaded_ids(tmp_path) == []


def test_total_pages_that_lie_low_do_not_hide_checks(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    """Seen: ``total: 30`` with ``total_pages: 1`` gave exit 0 with 10 of 30 loaded."""
    checks = make_checks(30)

    def lister(number: int, req: Request) -> Reply:
        return page_reply(number, checks[(number - 1) * PAGE : number * PAGE], 30, 1)

    with serve(checks, lister) as server:
        code, out, err = run(server)
    assert code == 0, err
    assert loaded_ids(tmp_path) == list(range(1, 31))
    assert "checks listed    30" in out


def test_a_total_the_pages_never_reach_is_an_error_not_a_silent_gap(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    """``total: 30``, ``total_pages: 1``, and page 2 comes back empty: 20 checks cannot be
    accounted for, so nothing is committed and the exit code says so."""
    checks = make_checks(30)

    def lister(number: int, req: Request) -> Reply:
        return page_reply(number, checks[:PAGE] if number == 1 else [], 30, 1)

    with serve(checks, lister) as server:
        code, out, err = run(server)
    assert code == 1
    line = one_error_line(err)
    assert "reported 30 check(s)" in line and "20 check(s) are unaccounted for" in line
    assert loaded_ids(tmp_path) == []
    assert out == ""


def test_pages_beyond_the_total_are_never_requested(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    """A server that says ``total: 20`` and ``total_pages: 10^9`` and makes up fresh checks on
    every page: the listing reads the pages the total explains, no more."""

    def lister(number: int, req: Request) -> Reply:
        if number >= VALVE:
            return page_reply(number, [], 20, 10**9)
        return page_reply(number, make_checks(PAGE, first_id=10**6 - number * PAGE), 20, 10**9)

    fixed = make_checks(PAGE, first_id=10**6 - PAGE) + make_checks(PAGE, first_id=10**6 - 2 * PAGE)
    with serve(fixed, lister) as server:
        code, _out, err = run(server)
        requests = list_requests(server)
    assert code == 0, err
    assert requests == 2
    assert len(loaded_ids(tmp_path)) == 20


def test_a_page_beyond_its_own_total_is_an_error(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    """The total shrinks from 40 to 15 while pages 3 and 4 still hold 10 checks each: page 3
    lies beyond its own total (checks 21-30 of 15), which no deletion explains."""
    checks = make_checks(40)

    def lister(number: int, req: Request) -> Reply:
        total = 40 if number < 3 else 15
        return page_reply(number, checks[(number - 1) * PAGE : number * PAGE], total, 4)

    with serve(checks, lister) as server:
        code, _out, err = run(server)
    assert code == 1
    line = one_error_line(err)
    assert "the same answer says the account holds 15" in line
    assert loaded_ids(tmp_path) == []


def test_a_total_that_shrinks_by_deletions_is_accounted_for_in_the_summary(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    """Five checks deleted upstream after page 1 was read (the total falls from 30 to 25): the
    run lists 25, says what happened, and exits 0."""
    checks = make_checks(30)
    state = {"deleted": False}
    survivors = checks[:PAGE] + checks[PAGE + 5 :]  # five of page 2 deleted

    def lister(number: int, req: Request) -> Reply:
        if number == 1 and not state["deleted"]:
            state["deleted"] = True
            return page_reply(1, checks[:PAGE], 30, 3)
        return page_reply(number, survivors[(number - 1) * PAGE : number * PAGE], 25, 3)

    with serve(survivors, lister) as server:
        code, out, err = run(server, "--concurrency", "1")
    assert code == 0, err
    assert loaded_ids(tmp_path) == sorted(c["id"] for c in survivors)
    assert "5 deleted upstream while listing" in out


def test_a_total_that_shrinks_beyond_deletions_is_an_error(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    """The total falls from 50 to 30 but the listing ends after 20: ten checks are neither listed
    nor explained by the fall."""
    checks = make_checks(50)
    answered = {"first": False}

    def lister(number: int, req: Request) -> Reply:
        total = 30 if answered["first"] else 50
        answered["first"] = True
        items = checks[(number - 1) * PAGE : number * PAGE] if number < 3 else []
        return page_reply(number, items, total, 5)

    with serve(checks, lister) as server:
        code, _out, err = run(server, "--concurrency", "1")
    assert code == 1
    line = one_error_line(err)
    assert "unaccounted for" in line
    assert loaded_ids(tmp_path) == []


def test_an_incremental_run_stops_at_the_watermark_and_says_so(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    """An incremental run reads only to the watermark on purpose: that is not a gap."""
    checks = make_checks(45)
    with serve(checks, honest(checks)) as server:
        assert run(server)[0] == 0
    newer = make_checks(3, first_id=46) + checks
    with serve(newer, honest(newer)) as server:
        code, out, err = run(server)
        requests = list_requests(server)
    assert code == 0, err
    assert requests <= 3
    assert loaded_ids(tmp_path) == list(range(1, 49))
    assert "stopped at the watermark" in out


# --- a check type this version does not know ----------------------------------------------


def test_an_unknown_check_type_is_loaded_and_its_results_kept_whole(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    """NumberYo adds an ``Email`` check: its checks load into ``checks``, their results whole as
    JSON into ``other_results``, the run warns once and the known types load as usual."""
    checks = make_checks(12, types=("HLR", "Verify", "Email"))
    emails = sorted(c["id"] for c in checks if c["type"] == "Email")
    with serve(checks, honest(checks)) as server:
        code, out, err = run(server)
        first_gets = server.count("GET") - list_requests(server)
    assert code == 0, err
    assert loaded_ids(tmp_path) == list(range(1, 13))
    assert table(tmp_path, "SELECT count(*) FROM numberyo.hlr_results")[0][0] == 4
    assert table(tmp_path, "SELECT count(*) FROM numberyo.verify_results")[0][0] == 4
    rows = table(
        tmp_path, "SELECT check_id, type, results FROM numberyo.other_results ORDER BY check_id"
    )
    assert [r[0] for r in rows] == emails
    by_id = {c["id"]: c for c in checks}
    for check_id, typ, results in rows:
        assert typ == "Email"
        assert json.loads(results) == json.loads(results_reply(by_id[check_id]).body)  # type: ignore[arg-type]
    assert table(tmp_path, "SELECT count(*) FROM numberyo.checks WHERE type = 'Email'")[0][0] == 4
    warnings = [line for line in err.splitlines() if "'Email'" in line]
    assert len(warnings) == 1 and "other_results" in warnings[0]
    assert "other types      Email 4" in out
    assert first_gets == 12

    # The next run does not fetch them again: their results are loaded.
    with serve(checks, honest(checks)) as server:
        code, out, err = run(server)
        again = server.count("GET") - list_requests(server)
    assert code == 0, err
    assert again == 0


def test_unknown_type_results_are_withheld_under_a_privacy_mode(
    run: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    """Which fields of an unknown type are personal is unknown: with ``--privacy mask`` the row
    is kept (the check is accounted for) but ``results`` is NULL."""
    checks = make_checks(3, types=("Email",))
    with serve(checks, honest(checks)) as server:
        code, _out, err = run(server, "--privacy", "mask")
    assert code == 0, err
    rows = table(tmp_path, "SELECT check_id, results FROM numberyo.other_results")
    assert sorted(rows) == [(1, None), (2, None), (3, None)]


def test_check_still_refuses_an_unknown_type_as_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NUMBERYO_API_TOKEN", "hostile-test-token")
    code = main(
        [
            "check",
            "--source",
            f"duckdb:///{tmp_path / 'src.duckdb'}",
            "--table",
            "t",
            "--column",
            "c",
            "--type",
            "Email",
            "--warehouse",
            f"duckdb:///{tmp_path / 'wh.duckdb'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown check type 'Email'" in err


def test_an_unknown_check_type_on_postgresql(
    run: Callable[..., tuple[int, str, str]], postgres_url: str
) -> None:
    """The same on PostgreSQL: ``other_results.results`` is JSONB, and a check whose row is
    there is not fetched again."""
    from numberyo_provider.warehouse import connect_warehouse

    checks = make_checks(6, types=("HLR", "Email"))
    with serve(checks, honest(checks)) as server:
        code, _out, err = run(server, "--warehouse", postgres_url)
    assert code == 0, err
    with connect_warehouse(postgres_url) as wh:
        rows = wh.query(
            f"SELECT check_id, results -> 'results' -> 0 ->> 'address' "
            f"FROM {wh.qualified('other_results')} ORDER BY check_id"
        )
    assert rows == [(1, "user1@example.com"), (3, "user3@example.com"), (5, "user5@example.com")]
    with serve(checks, honest(checks)) as server:
        code, _out, err = run(server, "--warehouse", postgres_url)
        refetched = server.count("GET") - list_requests(server)
    assert code == 0, err
    assert refetched == 0


@pytest.mark.slow
def test_the_operator_fails_with_the_same_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``NumberYoSyncOperator`` runs the same sync: the task fails with the same error class and
    words (Airflow shows them), and nothing is committed."""
    from numberyo_provider.errors import InconsistentPaginationError
    from numberyo_provider.operators.sync import NumberYoSyncOperator

    checks = make_checks(PAGE)

    def lister(number: int, req: Request) -> Reply:
        return page_reply(number, checks if number < VALVE else [], 10**9, 10**9)

    with serve(checks, lister) as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_NUMBERYO_DEFAULT",
            json.dumps({"conn_type": "numberyo", "host": server.url, "password": "tok"}),
        )
        op = NumberYoSyncOperator(
            task_id="sync",
            warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
            parquet_path=str(tmp_path / "landing"),
        )
        with pytest.raises(InconsistentPaginationError, match="repeats checks already listed"):
            op.execute(context={})  # type: ignore[arg-type]
        assert list_requests(server) <= 3 + 8
    assert loaded_ids(tmp_path) == []
