"""``make``'s bootstrap says plainly when the interpreter is too old for the package.

The package needs Python 3.11 (DuckDB 2.0 does); on 3.10 pip only answered "ResolutionImpossible"
about a pinned SQLAlchemy. The check runs in a copy of the Makefile and the two files it depends
on, so nothing is installed: it stops before pip.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _python_310() -> str | None:
    """A Python 3.10 interpreter, if the machine has one (pyenv's or the system's)."""
    pyenv = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates = [shutil.which("python3.10"), *glob.glob(f"{pyenv}/versions/3.10*/bin/python")]
    for candidate in filter(None, candidates):
        done = subprocess.run([candidate, "-V"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.startswith("Python 3.10"):
            return candidate
    return None


def test_make_refuses_an_interpreter_the_lock_cannot_serve(tmp_path: Path) -> None:
    python = _python_310()
    if python is None or shutil.which("make") is None:
        pytest.skip("needs make and a Python 3.10 interpreter (python3.10 on PATH)")
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    done = subprocess.run(
        ["make", "venv", f"PYTHON={python}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "runs Python 3.10" in done.stderr and "needs 3.11 or newer" in done.stderr
    assert "make PYTHON=python3.11 test" in done.stderr
    assert "ResolutionImpossible" not in done.stdout + done.stderr
    assert not (tmp_path / ".venv" / ".installed-stamp").exists()
