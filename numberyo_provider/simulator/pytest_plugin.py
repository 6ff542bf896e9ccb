"""pytest fixtures: a real NumberYo simulator over HTTP for your own DAG and pipeline tests.

Installed with the package (entry point ``pytest11``: ``numberyo_simulator``), so they are
available in any test session, no ``conftest.py`` needed::

    def test_my_sync(numberyo_simulator):
        numberyo_simulator.sim.seed_checks(25)
        run_my_pipeline(base_url=numberyo_simulator.url, token=numberyo_simulator.token)
        assert numberyo_simulator.sim.charges() == []

    def test_with_latency(numberyo_simulator_factory):
        server = numberyo_simulator_factory(credits=5, latency_ms=20, seed_checks=100)
        ...

The simulator needs the ``simulator`` extra (FastAPI, uvicorn); this module imports them only
when a fixture is used, so merely having the package installed never slows or breaks pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from numberyo_provider.simulator.server import SimulatorServer

#: Token of the fixtures' default account.
TEST_TOKEN = "test-token"  # noqa: S105 - a fixed test credential, not a secret


@pytest.fixture
def numberyo_simulator() -> Iterator[SimulatorServer]:
    """A fresh simulator server for one test: token ``"test-token"``, 1000 credits, no latency.

    Yields a started :class:`~numberyo_provider.simulator.SimulatorServer`: ``.url`` is the base
    URL to give the client, ``.token`` the token, ``.sim`` the state (seed history with
    ``.sim.seed_checks(n)``, inject faults with ``.sim.fail_next(...)``, read
    ``.sim.requests()``, ``.sim.charges()``, ``.sim.credits()``, ``.sim.truth()``).
    """
    from numberyo_provider.simulator.server import SimulatorServer

    with SimulatorServer(token=TEST_TOKEN, credits=1000) as server:
        yield server


@pytest.fixture
def numberyo_simulator_factory() -> Iterator[Callable[..., SimulatorServer]]:
    """Start simulators with your own settings: ``factory(**Simulator kwargs) -> server``.

    Keyword arguments are those of :class:`~numberyo_provider.simulator.Simulator` (``credits``,
    ``costs``, ``seed_checks``, ``latency_ms``, ``rate_limit_share``, ``error_share``,
    ``random_seed``, ...) plus ``host``/``port``; ``token`` defaults to ``"test-token"``. Every
    server started is stopped when the test ends.
    """
    from numberyo_provider.simulator.server import SimulatorServer

    servers: list[SimulatorServer] = []

    def factory(**kwargs: Any) -> SimulatorServer:
        if "sim" not in kwargs:
            kwargs.setdefault("token", TEST_TOKEN)
        server = SimulatorServer(**kwargs)
        servers.append(server)
        return server.start()

    try:
        yield factory
    finally:
        for server in servers:
            server.stop()
