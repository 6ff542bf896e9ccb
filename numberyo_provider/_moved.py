"""Old import paths of modules that moved, kept working (with a DeprecationWarning) for one release.

The package was reorganised by domain (see docs/architecture.md). Code written against the flat
layout, ``from numberyo_provider.client import NumberYoClient`` say, still imports: a meta-path
finder serves the old name as an alias of the module's new home, so both names are the *same*
module object (no second copy of module state, ``isinstance`` keeps working). Remove an entry one
release after its move; the table is the changelog of moves.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: old dotted name -> new dotted name. Moved in 0.2.0; aliases go in 0.3.0.
MOVED: dict[str, str] = {
    # The sync pipeline became a package; ``numberyo_provider.sync`` itself still exports run_sync.
    "numberyo_provider.extract": "numberyo_provider.sync.extract",
    "numberyo_provider.normalize": "numberyo_provider.sync.normalize",
    "numberyo_provider.land": "numberyo_provider.sync.land",
    # The HTTP API domain: numberyo_provider/api/ (issue 11).
    "numberyo_provider.async_client": "numberyo_provider.api.async_client",
    "numberyo_provider.client": "numberyo_provider.api.client",
    "numberyo_provider.deadline": "numberyo_provider.api.deadline",
    "numberyo_provider.models": "numberyo_provider.api.models",
    "numberyo_provider.ratelimit": "numberyo_provider.api.ratelimit",
    "numberyo_provider.retry": "numberyo_provider.api.retry",
    # The checks domain (paid number checks), one package: numberyo_provider.checks.
    "numberyo_provider.checker": "numberyo_provider.checks",
    "numberyo_provider.budget": "numberyo_provider.checks.budget",
    "numberyo_provider.ledger": "numberyo_provider.checks.ledger",
    "numberyo_provider.numbers": "numberyo_provider.checks.numbers",
    "numberyo_provider.read_only_sql": "numberyo_provider.checks.source.read_only_sql",
    "numberyo_provider.reconcile": "numberyo_provider.checks.reconcile",
    "numberyo_provider.sharding": "numberyo_provider.checks.sharding",
    "numberyo_provider.source": "numberyo_provider.checks.source",
    "numberyo_provider.verdict": "numberyo_provider.checks.verdict",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new_name: str) -> None:
        self._new_name = new_name
        self._real_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self._new_name)
        self._real_spec = module.__spec__
        warnings.warn(
            f"{spec.name} moved to {self._new_name}; the old path stops working in the next "
            "release. Update the import.",
            DeprecationWarning,
            stacklevel=_caller_stacklevel(),
        )
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Run nothing twice; undo importlib's overwrite of ``__spec__`` with the alias's."""
        module.__spec__ = self._real_spec


def _caller_stacklevel() -> int:
    """Point the warning at the importing line.

    ``warnings`` itself skips importlib's frames when counting, so count only the others: this
    module's frames, then the importer.
    """
    frame = sys._getframe(2)  # the caller of create_module
    level = 2
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    while frame is not None and "importlib" in frame.f_code.co_filename:
        frame = frame.f_back  # type: ignore[assignment]
    return level


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new_name = MOVED.get(fullname)
        if new_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new_name))


def install() -> None:
    """Idempotent: the package's ``__init__`` calls it once per interpreter."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())
