"""What the light entry points import, each checked in a fresh interpreter.

``numberyo simulate`` is meant to be light (a demo server: no Arrow, no database driver), yet it
is one subcommand of ``numberyo``, whose parser holds every subcommand's flags; Airflow imports
``provider_info`` in every process it starts. ``tests/test_api_package.py`` covers the clients,
``tests/test_status.py`` the status package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

#: Never needed to simulate the API nor to describe the provider.
HEAVY = {"pyarrow", "duckdb", "sqlalchemy", "pandas"}


def _top_modules_after(code: str) -> set[str]:
    """The top-level packages imported by ``code``, run in a fresh interpreter."""
    code = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    return {name.split(".")[0] for name in modules}


def test_numberyo_simulate_imports_no_arrow_or_database_driver() -> None:
    """``numberyo simulate --help`` builds the whole command line (``sync`` and ``check`` offer
    ``--privacy``, whose modes once came from the Arrow-based privacy module), then the server
    ``numberyo simulate`` starts serves a request."""
    loaded = _top_modules_after(
        textwrap.dedent(
            """
            import contextlib, io
            from numberyo_provider.cli import main
            with contextlib.redirect_stdout(io.StringIO()) as help_text:
                try:
                    main(["simulate", "--help"])
                except SystemExit as exc:
                    assert exc.code == 0, exc.code
            assert "--write-contacts" in help_text.getvalue()
            import requests
            from numberyo_provider.simulator.server import SimulatorServer
            with SimulatorServer(token="t") as server:
                answer = requests.get(
                    server.url + "/api/checks", headers={"Authorization": "Bearer t"}, timeout=10
                )
                assert answer.status_code == 200, answer.status_code
            """
        )
    )
    assert "numberyo_provider" in loaded
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


def test_the_simulate_module_and_the_cli_package_import_no_arrow() -> None:
    loaded = _top_modules_after(
        "import numberyo_provider.cli\nimport numberyo_provider.cli.simulate\n"
        "import numberyo_provider.cli.options"
    )
    assert not loaded & (HEAVY | {"phonenumbers", "requests", "httpx"}), sorted(loaded)


def test_provider_info_imports_nothing_heavy() -> None:
    """Airflow reads it in every process it starts (scheduler, workers, the CLI)."""
    loaded = _top_modules_after(
        "from numberyo_provider.provider_info import get_provider_info\nget_provider_info()"
    )
    assert not loaded & (HEAVY | {"phonenumbers", "requests", "httpx", "airflow"}), sorted(loaded)
