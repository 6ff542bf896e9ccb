"""The documentation tells the truth: every command in it runs, every link resolves, and the
parameter tables match the code.

* Every command line (``$ ...``) of a ``console`` block in ``README.md`` and ``docs/*.md`` is
  accounted for: ``numberyo`` commands must parse with the real parser and are **run**, in document
  order, against a simulator and a scratch directory (``export`` lines and ``python`` blocks of the
  runnable pages run too, so a page is exercised the way a reader follows it); ``make`` targets
  must exist in the Makefile (CI and ``make demo`` run them); ``pip install`` and
  ``docker compose`` are allowed (the compose file is validated by ``tests/test_compose.py``); any
  other command must be in :data:`ALLOWED` with the reason it is safe to leave to something else.
* The simulator's address in the docs (``http://127.0.0.1:8089``) is replaced by the test
  simulator's; its token is the documented ``demo-token``. ``numberyo simulate`` itself is only
  parsed (it serves in the foreground), as are commands pointing at PostgreSQL or S3.
* Relative links between the pages resolve, anchors included.
* ``docs/operators.md``'s parameter tables list exactly each class's parameters, with the right
  defaults and "templated" flags; ``docs/cli.md`` names exactly each subcommand's flags.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
DOCUMENTED_SIM_URLS = ("http://127.0.0.1:8089", "http://localhost:8089")
SIM_TOKEN = "demo-token"

#: Pages whose ``python`` blocks are executed in order with their commands (the others' are only
#: compiled). Pages written by other parts of the project may use blocks that are not standalone.
RUN_PYTHON_IN = ("getting-started.md", "connection.md")
COMPILE_PYTHON_IN = ("getting-started.md", "connection.md", "operators.md", "scaling.md")

#: Commands that are neither ``numberyo``, ``make``, ``pip install`` nor ``docker compose``, each
#: with why this test need not run it. Matched on the command's first words (after any leading
#: ``VAR=value`` assignments).
ALLOWED: dict[str, str] = {
    "airflow dags test numberyo_sync": "run by `make demo` (scripts/demo.py), also dag.test() in "
    "tests/test_dags.py",
    "airflow dags test numberyo_check_numbers": "run by `make demo` (scripts/demo.py)",
    "airflow dags test numberyo_dbt": "run by `make demo` (scripts/demo.py), also dag.test() in "
    "tests/test_dags.py",
    "airflow db migrate": "run by `make demo` (scripts/demo.py)",
    "airflow connections test numberyo_default": "Airflow's own command; "
    "test_connection_forms_in_the_docs_really_connect runs the same hook.test_connection() on "
    "the documented JSON and URI forms",
    "dbt build --project-dir dbt --profiles-dir dbt": "run by the numberyo_dbt DAG (make demo, "
    "tests/test_dags.py) and by tests/test_dbt.py",
}


# --------------------------------------------------------------------------------------------
# Reading the pages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    doc: Path
    lang: str
    text: str
    line: int


_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")


def blocks(doc: Path) -> list[Block]:
    out: list[Block] = []
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang, start = match.group(1), match.group(2).lower(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        out.append(Block(doc, lang, "\n".join(body), start + 1))
        i += 1
    return out


def commands(block: Block) -> list[str]:
    """The ``$ `` lines of a console block, continuation lines (``\\``) joined."""
    out: list[str] = []
    current: str | None = None
    for line in block.text.splitlines():
        if current is not None:
            current += " " + line.strip()
        elif line.startswith("$ "):
            current = line[2:].strip()
        else:
            continue
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        out.append(current)
        current = None
    return out


def all_commands() -> list[tuple[Block, str]]:
    return [
        (b, c) for doc in DOC_FILES for b in blocks(doc) if b.lang == "console" for c in commands(b)
    ]


def split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """Leading ``VAR=value`` assignments and the argv (shell quoting honoured)."""
    words = shlex.split(command, comments=True)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    return env, words


def _doc_id(item: tuple[Block, str]) -> str:
    block, command = item
    return f"{block.doc.name}:{block.line}:{command[:40]}"


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.MULTILINE))


# --------------------------------------------------------------------------------------------
# Every command is accounted for (fast)
# --------------------------------------------------------------------------------------------


def test_the_docs_have_commands() -> None:
    found = {b.doc.name for b, _ in all_commands()}
    assert {"README.md", "getting-started.md", "cli.md", "connection.md"} <= found


@pytest.mark.parametrize("item", all_commands(), ids=_doc_id)
def test_every_command_is_run_by_a_test_or_allowed(item: tuple[Block, str]) -> None:
    from numberyo_provider.cli import build_parser

    block, command = item
    where = f"{block.doc.relative_to(REPO)} line {block.line}: $ {command}"
    _env, argv = split_command(command)
    assert argv, where
    head = argv[0]
    if head == "export":
        assert len(argv) == 2 and "=" in argv[1], f"{where}: export NAME=value expected"
        return
    if head == "numberyo":
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exc:  # --help / --version exit 0; a bad flag exits 2
            assert exc.code == 0, f"{where}: the numberyo parser rejects it"
        return
    if head == "make":
        missing = [t for t in argv[1:] if not t.startswith("-") and t not in make_targets()]
        assert not missing, f"{where}: no such Makefile target {missing}"
        return
    if argv[:2] == ["pip", "install"] or argv[:2] == ["docker", "compose"]:
        return
    words = " ".join(argv)
    allowed = [key for key in ALLOWED if words == key or words.startswith(key + " ")]
    assert allowed, (
        f"{where}: not run by any test; run it in tests/test_docs.py or add it to ALLOWED with "
        "the reason it is safe not to"
    )


# --------------------------------------------------------------------------------------------
# Running the pages
# --------------------------------------------------------------------------------------------


def _substitute(text: str, sim_url: str) -> str:
    for documented in DOCUMENTED_SIM_URLS:
        text = text.replace(documented, sim_url)
        encoded = documented.replace(":", "%3A").replace("/", "%2F")
        text = text.replace(encoded, sim_url.replace(":", "%3A").replace("/", "%2F"))
    return text


def _runnable(argv: list[str]) -> tuple[bool, str]:
    if argv[1:2] == ["simulate"] and not any(a.startswith("--write-contacts") for a in argv):
        return False, "serves in the foreground; the test's simulator stands in"
    joined = " ".join(argv)
    if "postgresql" in joined or "s3://" in joined:
        return False, "needs a PostgreSQL server or S3"
    return True, ""


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _getting_started_contacts(workspace: Path) -> None:
    """Make the contacts table of getting-started.md (its python block) in ``workspace``: the
    other pages' examples (cli.md's ``--sql``) assume a reader who made it there."""
    [block] = [
        b
        for b in blocks(REPO / "docs" / "getting-started.md")
        if b.lang == "python" and "contacts.duckdb" in b.text
    ]
    cwd = Path.cwd()
    os.chdir(workspace)
    try:
        exec(compile(block.text, f"getting-started.md:{block.line}", "exec"), {})
    finally:
        os.chdir(cwd)


@dataclass
class PageRun:
    workspace: Path
    outputs: list[tuple[str, int, str]]


def run_page(doc: Path, workspace: Path, sim_url: str, monkeypatch: pytest.MonkeyPatch) -> PageRun:
    """Follow ``doc`` like a reader: exports, numberyo commands and (some) python blocks."""
    from numberyo_provider.cli import main

    monkeypatch.chdir(workspace)
    monkeypatch.setenv("PWD", str(workspace))
    monkeypatch.setenv("NUMBERYO_BASE_URL", sim_url)
    monkeypatch.setenv("NUMBERYO_API_TOKEN", SIM_TOKEN)
    for key in ("NUMBERYO_PRIVACY_MODE", "NUMBERYO_PRIVACY_SECRET"):
        monkeypatch.delenv(key, raising=False)
    outputs: list[tuple[str, int, str]] = []
    for block in blocks(doc):
        if block.lang == "python" and doc.name in RUN_PYTHON_IN:
            source = _substitute(block.text, sim_url)
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(source, f"{doc.name}:{block.line}", "exec"), {"__name__": "__doc__"})
            outputs.append((f"python block at line {block.line}", 0, buffer.getvalue()))
            continue
        if block.lang != "console":
            continue
        for command in commands(block):
            env, argv = split_command(_substitute(os.path.expandvars(command), sim_url))
            if argv[0] == "export":
                key, _, value = argv[1].partition("=")
                monkeypatch.setenv(key, value)
                continue
            if argv[0] != "numberyo":
                continue
            runnable, _why = _runnable(argv)
            if not runnable:
                continue
            out, err = io.StringIO(), io.StringIO()
            with _env(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv[1:])
                except SystemExit as exc:
                    code = int(exc.code or 0)
            outputs.append((command, code, out.getvalue() + err.getvalue()))
            assert code == 0, (
                f"{doc.name} line {block.line}: $ {command}\nexit {code}\n{out.getvalue()}"
                f"{err.getvalue()}"
            )
    return PageRun(workspace, outputs)


@pytest.fixture
def page_runner(
    numberyo_simulator_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str], PageRun]:
    def run(name: str) -> PageRun:
        server = numberyo_simulator_factory(token=SIM_TOKEN, seed_checks=40, credits=1000)
        doc = (REPO / "docs" / name).resolve()
        workspace = tmp_path / doc.stem
        workspace.mkdir()
        if doc.name not in ("README.md", "getting-started.md"):  # those two make their own
            _getting_started_contacts(workspace)
        return run_page(doc, workspace, server.url, monkeypatch)

    return run


def assert_make_clean_removes_all(workspace: Path) -> None:
    """``make clean``, run where the reader followed the page, leaves nothing the page made.

    The page's ``dbt build`` (getting-started.md; run by tests/test_dbt.py, not here) writes
    ``dbt/target`` and ``dbt/logs`` under the project: made here as dbt would.
    """
    import shutil
    import subprocess

    made = sorted(p.name for p in workspace.iterdir())
    assert made, "the page created nothing?"
    for sub in ("target", "logs"):
        (workspace / "dbt" / sub).mkdir(parents=True)
        (workspace / "dbt" / sub / "leftover").write_text("x")
    shutil.copy(REPO / "Makefile", workspace / "Makefile")
    proc = subprocess.run(
        ["make", "--no-print-directory", "clean"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    left = sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*"))
    assert left in (["Makefile"], ["Makefile", "dbt"]), (
        f"make clean leaves {left} of what the page made ({made}): add them to the Makefile's "
        "WALKTHROUGH_FILES"
    )


def _sql(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_getting_started_runs_and_its_story_is_true(
    page_runner: Callable[[str], PageRun],
) -> None:
    run = page_runner("getting-started.md")
    wh = run.workspace / "warehouse.duckdb"
    # "Of the seven values, n/a and 12345 are not phone numbers ... Four checks are created,
    # costing 4 credits" (Ann's two spellings are one number).
    assert _sql(wh, "SELECT count(*) FROM numberyo.rejected_numbers") == [(2,)]
    statuses = dict(_sql(wh, "SELECT status, count(*) FROM numberyo.check_requests GROUP BY 1"))
    assert statuses == {"created": 4}
    credits = _sql(
        wh,
        "SELECT sum(c.user_cost) FROM numberyo.checks c JOIN numberyo.check_requests r "
        "USING (check_id)",
    )[0][0]
    assert credits == 4
    # The SQL of step 5 ran and printed a country breakdown that includes the checked numbers.
    printed = "".join(out for label, _, out in run.outputs if label.startswith("python"))
    assert "Belgium" in printed and "reachable_pct" in printed
    assert_make_clean_removes_all(run.workspace)


@pytest.mark.slow
def test_readme_quick_start_runs(page_runner: Callable[[str], PageRun]) -> None:
    # The page makes its own source (no contacts.duckdb is prepared for it), then checks it.
    run = page_runner("../README.md")
    ran = [command for command, _, _ in run.outputs]
    assert ran[0].startswith("numberyo simulate --write-contacts"), ran
    assert any(c.startswith("numberyo sync") for c in ran)
    assert any(c.startswith("numberyo check") for c in ran)
    from numberyo_provider.simulator.contacts import make_contacts

    truth = make_contacts().truth()
    source = run.workspace / "contacts.duckdb"
    assert _sql(source, "SELECT count(*) FROM contacts") == [(truth["rows"],)]
    wh = run.workspace / "warehouse.duckdb"
    # --max-credits 50 at 1 credit per HLR check: exactly 50 created, the rest not checked.
    statuses = dict(_sql(wh, "SELECT status, count(*) FROM numberyo.check_requests GROUP BY 1"))
    assert statuses["created"] == 50, statuses
    assert sum(statuses.values()) == truth["distinct_valid_numbers"], statuses
    assert_make_clean_removes_all(run.workspace)


def test_cli_page_runs(page_runner: Callable[[str], PageRun]) -> None:
    run = page_runner("cli.md")
    ran = [cmd for cmd, _, _ in run.outputs]
    assert any("--full-refresh" in c for c in ran) and any("--sql" in c for c in ran)
    assert any(c.startswith("numberyo status") for c in ran)  # and it exited 0: all well
    # The --sql example finds the French number of the getting-started contacts and checks it.
    [sql_out] = [out for cmd, _, out in run.outputs if "--sql" in cmd]
    summary = json.loads(sql_out)
    assert summary["read"] >= 1 and summary["created"] >= 1, summary
    # --write-contacts wrote the sample table next to the reader's own contacts.
    assert _sql(run.workspace / "sample-contacts.duckdb", "SELECT count(*) FROM contacts") == [
        (300,)
    ]
    wh = run.workspace / "warehouse.duckdb"
    # --full-refresh --privacy mask replaced the numbers of the synced checks by masked ones.
    masked = _sql(wh, "SELECT count(*) FROM numberyo.hlr_results WHERE msisdn LIKE '%*%'")[0][0]
    assert masked > 0
    assert _sql(wh, "SELECT count(*) FROM numberyo.verify_results")[0][0] > 0
    assert_make_clean_removes_all(run.workspace)


@pytest.mark.slow
def test_connection_forms_in_the_docs_really_connect(
    page_runner: Callable[[str], PageRun],
) -> None:
    # The page exports the JSON form, then the URI form, then its python block tests the
    # connection: the last form set (URI, percent-encoded base URL) must connect.
    run = page_runner("connection.md")
    printed = "".join(out for label, _, out in run.outputs if label.startswith("python"))
    assert printed.startswith("True Connected to http://127.0.0.1:"), printed


def test_both_documented_connection_forms_configure_the_hook(
    numberyo_simulator_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from numberyo_provider.hooks.numberyo import NumberYoHook

    server = numberyo_simulator_factory(token=SIM_TOKEN, seed_checks=3)
    exports = [
        c
        for b in blocks(REPO / "docs" / "connection.md")
        if b.lang == "console"
        for c in commands(b)
        if c.startswith("export AIRFLOW_CONN_NUMBERYO_DEFAULT=")
    ]
    assert len(exports) == 2, "connection.md shows the JSON and the URI form"
    for export in exports:
        _, argv = split_command(_substitute(export, server.url))
        monkeypatch.setenv("AIRFLOW_CONN_NUMBERYO_DEFAULT", argv[1].partition("=")[2])
        hook = NumberYoHook()
        assert hook.settings["base_url"] == server.url
        assert hook.settings["max_retries"] == 3
        ok, message = hook.test_connection()
        assert ok, message
        assert "the account has 3 checks" in message


# --------------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------------

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    text = doc.read_text()
    text = re.sub(r"^(```+|~~~+).*?^\1\s*$", "", text, flags=re.MULTILINE | re.DOTALL)
    seen: dict[str, int] = {}
    out: set[str] = set()
    for match in re.finditer(r"^#{1,6}\s+(.*)$", text, flags=re.MULTILINE):
        slug = _slug(match.group(1))
        n = seen.get(slug, 0)
        out.add(slug if n == 0 else f"{slug}-{n}")
        seen[slug] = n + 1
    return out


def links(doc: Path) -> list[str]:
    text = doc.read_text()
    text = re.sub(r"^(```+|~~~+).*?^\1\s*$", "", text, flags=re.MULTILINE | re.DOTALL)
    return _LINK.findall(text)


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    broken: list[str] = []
    for target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    assert not broken, f"{doc.relative_to(REPO)}: " + "; ".join(broken)


def test_index_links_every_page() -> None:
    index = REPO / "docs" / "README.md"
    linked = {Path(t.partition("#")[0]).name for t in links(index)}
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"README.md"}
    assert pages <= linked, f"docs/README.md does not link {sorted(pages - linked)}"


# --------------------------------------------------------------------------------------------
# The reference tables match the code
# --------------------------------------------------------------------------------------------


def _python_blocks_compile() -> list[Block]:
    return [
        b for name in COMPILE_PYTHON_IN for b in blocks(REPO / "docs" / name) if b.lang == "python"
    ]


@pytest.mark.parametrize("block", _python_blocks_compile(), ids=lambda b: f"{b.doc.name}:{b.line}")
def test_python_examples_compile(block: Block) -> None:
    compile(block.text, f"{block.doc.name}:{block.line}", "exec")


def _classes() -> dict[str, type]:
    from numberyo_provider.hooks.numberyo import NumberYoHook
    from numberyo_provider.operators.check import (
        NumberYoCreateChecksOperator,
        NumberYoLoadLandedOperator,
    )
    from numberyo_provider.operators.status import NumberYoStatusOperator
    from numberyo_provider.operators.sync import NumberYoSyncOperator
    from numberyo_provider.sensors.new_checks import NumberYoNewChecksSensor
    from numberyo_provider.triggers.new_checks import NumberYoNewChecksTrigger

    return {
        c.__name__: c
        for c in (
            NumberYoSyncOperator,
            NumberYoNewChecksSensor,
            NumberYoNewChecksTrigger,
            NumberYoCreateChecksOperator,
            NumberYoLoadLandedOperator,
            NumberYoStatusOperator,
            NumberYoHook,
        )
    }


def _doc_table(doc: Path, heading: str) -> list[list[str]]:
    """Rows of the first ``| Parameter |`` table under ``## `heading```."""
    text = doc.read_text()
    start = text.find(f"## `{heading}`")
    assert start >= 0, f"{doc.name} has no section ## `{heading}`"
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    rows: list[list[str]] = []
    in_table = False
    for line in section.splitlines():
        if line.startswith("| Parameter |"):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set(cells[0]) <= set("-: "):
                continue
            rows.append(cells)
    assert rows, f"{doc.name}: no parameter table under {heading}"
    return rows


def _fmt_default(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return "required"
    return f"`{value!r}`".replace("'", '"')


@pytest.mark.parametrize("name", sorted(_classes()))
def test_operator_tables_match_the_signatures(name: str) -> None:
    cls = _classes()[name]
    params = {
        n: p
        for n, p in inspect.signature(vars(cls)["__init__"]).parameters.items()
        if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    templated = set(getattr(cls, "template_fields", ()) or ())
    rows = _doc_table(REPO / "docs" / "operators.md", name)
    documented = {r[0].strip("`"): r for r in rows}
    assert list(documented) == list(params), f"{name}: parameters (in order) differ"
    for pname, param in params.items():
        row = documented[pname]
        assert row[1] == _fmt_default(param.default), f"{name}.{pname}: default"
        assert row[2] == ("yes" if pname in templated else "no"), f"{name}.{pname}: templated"
        assert row[3], f"{name}.{pname}: no description"


def _subparsers() -> dict[str, Any]:
    import argparse

    from numberyo_provider.cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


@pytest.mark.parametrize("command", ["simulate", "sync", "check", "status"])
def test_cli_page_names_exactly_the_flags(command: str) -> None:
    parser = _subparsers()[command]
    flags = {s for a in parser._actions for s in a.option_strings if s.startswith("--")}
    flags.discard("--help")
    text = (REPO / "docs" / "cli.md").read_text()
    start = text.find(f"## `numberyo {command}`")
    assert start >= 0
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    table_flags = set(re.findall(r"^\| `(--[a-z-]+)`", section, flags=re.MULTILINE))
    mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", section))
    assert table_flags == flags, f"numberyo {command}: flag table differs from the parser"
    assert mentioned <= flags | {"--help"}, f"unknown flags in the text: {mentioned - flags}"


def test_allow_list_entries_are_used() -> None:
    used = set()
    for _, command in all_commands():
        _, argv = split_command(command)
        words = " ".join(argv)
        used |= {k for k in ALLOWED if words == k or words.startswith(k + " ")}
    assert used == set(ALLOWED), f"stale ALLOWED entries: {sorted(set(ALLOWED) - used)}"


if __name__ == "__main__":  # pragma: no cover - a helper to list what the docs run
    for block, command in all_commands():
        print(f"{block.doc.name}:{block.line}: {command}", file=sys.stdout)
