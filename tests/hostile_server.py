"""A misbehaving NumberYo stand-in on loopback: tests script each answer.

The simulator follows the documented contract; this server is for the opposite, what a broken or
hostile server does (drip bytes, send huge or deeply nested bodies, lie about pagination, invent a
check type). A test gives a ``route(request) -> Reply`` function; the server calls it for every
request, in the server's own thread, and records every request it saw.

    def route(req: Request) -> Reply:
        if req.path == "/api/checks":
            return Reply.json({"data": [], "total": 0, ...})
        return Reply(404)

    with HostileServer(route) as server:
        client = NumberYoClient("token", server.url)

A ``Reply`` body is ``bytes`` (sent with a ``Content-Length``) or an iterable of ``bytes`` chunks
(sent with ``Transfer-Encoding: chunked``, ``chunk_delay`` seconds apart), so a test can drip or
flood without holding the body in memory. The server never runs longer than its test: ``close()``
stops it and every handler checks ``closing`` between chunks.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["HostileServer", "Reply", "Request", "drip", "flood"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Reply:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds between chunks of an iterable body (a drip).
    chunk_delay: float = 0.0
    #: Announce this Content-Length instead of the real one (a lie), for a bytes body.
    content_length: int | None = None
    #: Close the connection after this answer without saying so (a keep-alive timeout).
    close_after: bool = False

    @classmethod
    def json(cls, value: Any, status: int = 200, **kwargs: Any) -> Reply:
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        return cls(status, json.dumps(value).encode(), headers=headers, **kwargs)


class _QuietServer(ThreadingHTTPServer):
    """Says nothing when a client hangs up on it: the tests cut connections on purpose (an answer
    refused or cut off mid-body), and the stdlib would print each reset as a traceback. Any other
    error in a handler is still printed."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exception(), ConnectionError):
            return
        super().handle_error(request, client_address)


class HostileServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 with an ephemeral port; a context manager."""

    def __init__(self, route: Callable[[Request], Reply]) -> None:
        self.route = route
        self.requests: list[Request] = []
        #: TCP connections accepted so far.
        self.connections = 0
        self.closing = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with server._lock:
                    server.requests.append(request)
                reply = server.route(request)
                try:
                    self._reply(reply)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                if reply.close_after:
                    self.close_connection = True

            def _reply(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if isinstance(reply.body, bytes | bytearray):
                    length = reply.content_length
                    self.send_header(
                        "Content-Length", str(len(reply.body) if length is None else length)
                    )
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in reply.body:
                    if server.closing.is_set():
                        self.close_connection = True
                        return
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    if reply.chunk_delay:
                        server.closing.wait(reply.chunk_delay)
                self.wfile.write(b"0\r\n\r\n")

            do_GET = _handle
            do_POST = _handle

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HostileServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            )


def drip(data: bytes, every: int = 1) -> Iterable[bytes]:
    """``data`` in chunks of ``every`` bytes (with ``Reply.chunk_delay`` between them)."""
    for start in range(0, len(data), every):
        yield data[start : start + every]


def flood(total_bytes: int, chunk: bytes = b" " * 65536) -> Iterable[bytes]:
    """``total_bytes`` of whitespace, streamed; never held in memory."""
    sent = 0
    while sent < total_bytes:
        piece = chunk[: total_bytes - sent]
        sent += len(piece)
        yield piece
