"""The client-CPU benchmark measures the tree it is given, not the checkout it runs from.

``bench_client_cpu.py --baseline-tree DIR`` compares this checkout's client with another's. Its
children ran as ``python -c`` from the repository root, which puts the working directory before
``PYTHONPATH`` on ``sys.path``: every "baseline" imported this checkout's package, and an A/B of two
trees compared one tree with itself.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_baseline_tree_child_imports_that_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tree whose client sends nothing: its child succeeds against an address nothing
    # listens on, where this checkout's real client would fail to connect.
    api = tmp_path / "numberyo_provider" / "api"
    api.mkdir(parents=True)
    (tmp_path / "numberyo_provider" / "__init__.py").write_text("")
    (api / "__init__.py").write_text("")
    (api / "client.py").write_text(
        "class NumberYoClient:\n"
        "    def __init__(self, *args, **kwargs): pass\n"
        "    def __enter__(self): return self\n"
        "    def __exit__(self, *exc): pass\n"
        "    def list_checks(self, page): return None\n"
    )
    spec = importlib.util.spec_from_file_location(
        "bench_client_cpu", ROOT / "bench" / "bench_client_cpu.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.chdir(ROOT)  # where the README runs benchmarks from
    monkeypatch.setitem(os.environ, "PYTHONPATH", "")
    figure = bench.child(tmp_path, "http://127.0.0.1:9", "sync", 3, 1)
    assert figure >= 0.0  # the stub's figure: this checkout's client would have failed
