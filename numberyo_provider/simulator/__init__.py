"""A local NumberYo API server: test DAGs, demos and benchmarks without an account or network.

``Simulator`` holds the state (accounts, checks, credits, request log, fault knobs);
``SimulatorServer`` serves it over HTTP on a loopback port. The pytest fixtures
``numberyo_simulator`` and ``numberyo_simulator_factory`` come with the package; from a shell,
``numberyo simulate`` (or ``python -m numberyo_provider.simulator``) runs one in the foreground.

Imports are lazy so that the pytest plugin, loaded in every test session where this package is
installed, costs nothing and works without the ``simulator`` extra (FastAPI, uvicorn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from numberyo_provider.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from numberyo_provider.simulator.server import SimulatorServer
    from numberyo_provider.simulator.state import (
        RequestLogEntry,
        Simulator,
        SimulatorRequestError,
    )

__all__ = ["RequestLogEntry", "Simulator", "SimulatorRequestError", "SimulatorServer"]


__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "SimulatorServer": "numberyo_provider.simulator.server",
        "Simulator": "numberyo_provider.simulator.state",
        "RequestLogEntry": "numberyo_provider.simulator.state",
        "SimulatorRequestError": "numberyo_provider.simulator.state",
    },
)
