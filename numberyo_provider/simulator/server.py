"""Run a simulator over real HTTP: uvicorn in a daemon thread on a loopback port.

The socket is bound here, before uvicorn starts, so port 0 gives a free port with no race and a
taken port fails at once with a clear error instead of inside the server thread.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

from numberyo_provider.simulator.state import Simulator

try:
    import uvicorn

    from numberyo_provider.simulator.app import build_app
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "The NumberYo simulator needs FastAPI and uvicorn: "
        "pip install 'airflow-provider-numberyo[simulator]'"
    ) from exc

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0


class SimulatorServer:
    """A running simulator: ``with SimulatorServer(credits=10) as server: ... server.url``.

    Pass an existing :class:`Simulator` or the keyword arguments to make one. ``start()`` returns
    once the server answers; ``stop()`` is prompt (in-flight requests are cut) and idempotent.
    """

    def __init__(
        self,
        sim: Simulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_log: bool = False,
        **sim_kwargs: Any,
    ) -> None:
        if sim is not None and sim_kwargs:
            raise TypeError("pass either a Simulator or Simulator keyword arguments, not both")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        self.sim = sim if sim is not None else Simulator(**sim_kwargs)
        self.host = host
        self.port = port
        #: Log each request (``uvicorn.access``: client, method, path, status; never the token).
        self.access_log = access_log
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def token(self) -> str:
        """The token of the simulator's default account."""
        return self.sim.default_token

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (the real port once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _bind(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            family = infos[0][0]
            return socket.create_server((self.host, self.port), family=family, backlog=2048)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(
                    exc.errno,
                    f"cannot listen on {self.host}:{self.port}: the port is already in use; "
                    "choose another port (0 picks a free one)",
                ) from None
            raise OSError(
                exc.errno, f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None

    def start(self) -> SimulatorServer:
        """Bind, start uvicorn in a daemon thread, wait until it serves."""
        with self._lock:
            if self._thread is not None:
                return self
            sock = self._bind()
            self.port = sock.getsockname()[1]
            config = uvicorn.Config(
                build_app(self.sim),
                http="httptools" if importlib.util.find_spec("httptools") else "h11",
                log_config=None,
                log_level="info" if self.access_log else "warning",
                access_log=self.access_log,
                lifespan="off",
                server_header=False,
                timeout_graceful_shutdown=1,
                backlog=2048,
            )
            if self.access_log:  # the request lines only, not uvicorn's start/stop chatter
                logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
            server = uvicorn.Server(config)
            thread = threading.Thread(
                target=server.run,
                kwargs={"sockets": [sock]},
                name=f"numberyo-simulator-{self.port}",
                daemon=True,
            )
            self._server, self._thread, self._socket = server, thread, sock
            thread.start()
            deadline = time.monotonic() + _START_TIMEOUT_S
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    server.should_exit = True
                    sock.close()
                    self._server = self._thread = self._socket = None
                    raise RuntimeError(
                        f"the NumberYo simulator did not start on {self.url} "
                        "(see the uvicorn log above)"
                    )
                time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving; safe to call twice or before start()."""
        with self._lock:
            server, thread, sock = self._server, self._thread, self._socket
            self._server = self._thread = self._socket = None
        if server is None or thread is None:
            return
        server.should_exit = True
        server.force_exit = True
        thread.join(_STOP_TIMEOUT_S)
        if sock is not None:
            sock.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SimulatorServer {self.url} {state}>"
