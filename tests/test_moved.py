"""Modules that moved keep their old import path for one release, loudly, as the same module."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

from numberyo_provider._moved import MOVED


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_path_is_the_new_module_with_a_warning(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__spec__ is not None and module.__spec__.name == new  # not the alias's spec


def test_from_import_of_an_old_path_warns_at_the_importing_line(tmp_path: object) -> None:
    """The warning points at the user's import, so they can find and fix it."""
    old, new = next(iter(sorted(MOVED.items())))
    code = f"import warnings\nwarnings.simplefilter('error')\nfrom {old} import *  # line 3\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 1
    assert 'File "<string>", line 3' in done.stderr
    assert f"DeprecationWarning: {old} moved to {new}" in done.stderr


def test_the_package_itself_imports_no_old_path() -> None:
    code = (
        "import warnings, pkgutil, importlib\nwarnings.simplefilter('error', DeprecationWarning)\n"
        "import numberyo_provider\n"
        "for m in pkgutil.walk_packages(numberyo_provider.__path__, 'numberyo_provider.'):\n"
        "    if m.name.split('.')[1] in ('hooks', 'operators', 'sensors', 'triggers'):\n"
        "        continue  # Airflow's own deprecations are not ours\n"
        "    if m.name.endswith(('__main__', 'pytest_plugin')):\n"
        "        continue\n"
        "    importlib.import_module(m.name)\n"
    )
    with warnings.catch_warnings():
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300
        )
    assert done.returncode == 0, done.stderr[-2000:]
