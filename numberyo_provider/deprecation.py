"""Renamed names keep working for one release, with a DeprecationWarning that names the new one.

0.2 gave each idea one name (``docs/upgrading.md``); an old keyword, attribute or function still
works until 0.3. :func:`renamed_keywords` maps old keywords of a function (or ``__init__``) to the
new ones; :func:`warn_renamed` is the one warning, for the places that map by hand (an operator's
signature, which Airflow validates, must list the old argument itself).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

__all__ = ["renamed_keywords", "warn_renamed"]

_F = TypeVar("_F", bound=Callable[..., Any])


def warn_renamed(old: str, new: str, *, where: str, stacklevel: int = 2) -> None:
    """Warn that ``old`` (of ``where``) is now ``new``; ``stacklevel`` as seen by the caller."""
    warnings.warn(
        f"{where}: {old} is deprecated, use {new} (renamed in 0.2; the old name goes in 0.3)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def renamed_keywords(**renames: str) -> Callable[[_F], _F]:
    """Let callers still pass ``old=`` for each ``old="new"`` (warned, then passed as ``new=``).

    Passing both names is a :class:`TypeError`, as for any keyword given twice.
    """

    def decorate(function: _F) -> _F:
        where = function.__qualname__.removesuffix(".__init__")

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{where}() got {new}= and its old name {old}=; give one")
                    warn_renamed(old, new, where=where, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return cast(_F, wrapper)

    return decorate
