"""Keep-alive HTTP/1.1 connections to the API's one host, over the standard library's http.client.

The client's transport when no proxy applies (urllib3 carries the proxied cases). Why not urllib3
here too: measured against the simulator on loopback with 16 threads, urllib3's pool, connection
and response layers cost 0.71-0.75 ms of CPU a request, http.client alone 0.33 ms
(``docs/benchmarks.md``); a sync sends 1.1 requests a check, and on a busy worker that CPU, not the
API, is the limit. urllib3 added nothing this client uses on a direct connection: no redirects,
no retries (RetryPolicy decides), one host.

What it keeps of urllib3's care: a pooled connection the server closed while idle is never
reused (checked before every request, so a paid POST is not sent into a dead socket); a
connection goes back to the pool only when its answer was read whole; a compressed answer
(sent although we ask for ``identity``) is decoded piece by piece, never whole, so the size
limit bounds a gzip bomb. Each failure is classified where it happens, which is more exact than
guessing from an exception afterwards: only an error while connecting means nothing was sent.
"""

from __future__ import annotations

import collections
import http.client
import select
import socket
import ssl
import zlib
from collections.abc import Iterator
from urllib.parse import urlsplit

from requests.structures import CaseInsensitiveDict

from numberyo_provider.api.deadline import Deadline
from numberyo_provider.api.retry import Failure

__all__ = ["ConnectionPool", "Exchange", "TransportFailure"]


class TransportFailure(Exception):
    """One attempt failed below HTTP; ``failure`` is what the retry decision needs to know."""

    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle keep-alive socket is unusable: readable means the server closed it (or
    sent something unasked), so a request written to it would be lost or misread."""
    try:
        if hasattr(select, "poll"):  # poll: no limit on the descriptor's number, unlike select
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # closed meanwhile
        return True


class _Decoder:
    """A ``Content-Encoding`` of gzip or deflate undone in bounded pieces (a bomb never
    expands at once); any other encoding passes through and fails as JSON, as urllib3 would."""

    def __init__(self, encoding: str) -> None:
        # gzip, or zlib-wrapped deflate: 32 + MAX_WBITS detects either header.
        self._inflate = zlib.decompressobj(32 + zlib.MAX_WBITS)
        self._raw = encoding == "deflate"  # some servers send raw deflate: retried below once
        self._started = False

    def pieces(self, data: bytes, size: int) -> Iterator[bytes]:
        try:
            if not self._started and self._raw:
                try:
                    out = self._inflate.decompress(data, size)
                except zlib.error:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                    out = self._inflate.decompress(data, size)
            else:
                out = self._inflate.decompress(data, size)
            self._started = True
            while True:
                if out:
                    yield out
                tail = self._inflate.unconsumed_tail
                if not tail:
                    return
                out = self._inflate.decompress(tail, size)
        except zlib.error as exc:
            raise TransportFailure(
                Failure.CONNECTION_LOST, f"the compressed answer could not be decoded ({exc})"
            ) from None


class Exchange:
    """One answer on a connection the pool lent: its head, its body in pieces, and the
    connection's return (only after the whole answer was read)."""

    __slots__ = ("_conn", "_pool", "_response", "headers", "reason", "status")

    def __init__(
        self,
        pool: ConnectionPool,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
    ) -> None:
        self._pool = pool
        self._conn: http.client.HTTPConnection | None = conn
        self._response = response
        self.status = response.status
        self.reason = response.reason
        # Case-insensitive, as HTTP's are; a repeated header keeps its last value.
        self.headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(response.getheaders())

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes, decoded; TransportFailure if cut."""
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        decoder = _Decoder(encoding) if encoding in ("gzip", "x-gzip", "deflate") else None
        while True:
            try:
                data = self._response.read(size)
            except TimeoutError:
                raise TransportFailure(Failure.READ_TIMEOUT, "the answer stopped coming") from None
            except (OSError, http.client.HTTPException) as exc:
                raise TransportFailure(Failure.CONNECTION_LOST, _describe(exc)) from None
            if not data:
                return
            if decoder is None:
                yield data
            else:
                yield from decoder.pieces(data, size)

    def release(self, reusable: bool) -> None:
        """Give the connection back if the answer was read whole and it may serve another."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if reusable and self._response.isclosed() and not self._response.will_close:
            self._pool.give_back(conn)
        else:
            self._response.close()
            conn.close()


class ConnectionPool:
    """Up to ``maxsize`` idle keep-alive connections to ``base_url``'s host, shared by threads.

    Lock-free: ``deque.pop``/``append`` are atomic, and a connection belongs to one thread from
    :meth:`send` until :meth:`Exchange.release`. ``timeout`` is ``(connect, read)``: connecting,
    then each read of the socket; the attempt's total is the :class:`Deadline`'s.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext,
        maxsize: int,
        timeout: tuple[float, float],
    ) -> None:
        parts = urlsplit(base_url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")
        self._context = ssl_context
        self.maxsize = maxsize
        self._connect_timeout, self._read_timeout = timeout
        self._idle: collections.deque[http.client.HTTPConnection] = collections.deque()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        if len(self._idle) < self.maxsize:
            self._idle.append(conn)
        else:
            conn.close()

    def send(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        deadline: Deadline,
    ) -> Exchange:
        """Write one request (``target``: the path under the base URL, with its query) and read
        the head of its answer."""
        conn = self._idle_connection()
        if conn is None:
            conn = self._connect(deadline)
        else:
            deadline.attach(conn.sock)
        try:
            conn.request(method, self._prefix + target, body=body, headers=headers)
            response = conn.getresponse()
        except http.client.InvalidURL as exc:  # refused before a byte was written
            conn.close()
            raise TransportFailure(Failure.INVALID_REQUEST, _describe(exc)) from None
        except TimeoutError:
            conn.close()
            raise TransportFailure(Failure.READ_TIMEOUT, "no answer within the timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()  # sent, or maybe sent: the connection's state is unknown
            raise TransportFailure(Failure.CONNECTION_LOST, _describe(exc)) from None
        except BaseException:  # e.g. a Ctrl-C mid-request: never pool a connection in that state
            conn.close()
            raise
        return Exchange(self, conn, response)

    def _idle_connection(self) -> http.client.HTTPConnection | None:
        while True:
            try:
                conn = self._idle.pop()  # the most recently used: the least likely closed
            except IndexError:
                return None
            if conn.sock is not None and not _dropped(conn.sock):
                return conn
            conn.close()

    def _connect(self, deadline: Deadline) -> http.client.HTTPConnection:
        """A new connection; a failure here is the only one that proves nothing was sent."""
        try:
            sock = socket.create_connection((self._host, self._port), self._connect_timeout)
        except OSError as exc:  # refused, unreachable, DNS (gaierror), connect timeout
            raise TransportFailure(Failure.CONNECT_FAILED, _describe(exc)) from None
        deadline.attach(sock)  # from here the TLS handshake and the request are covered
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls:
                sock = self._context.wrap_socket(sock, server_hostname=self._host)
                deadline.attach(sock)
            sock.settimeout(self._read_timeout)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise TransportFailure(Failure.CERTIFICATE, _describe(exc)) from None
        except OSError as exc:  # the handshake failed or timed out (ssl.SSLError included)
            sock.close()
            raise TransportFailure(Failure.CONNECTION_LOST, _describe(exc)) from None
        conn: http.client.HTTPConnection
        if self._tls:
            conn = http.client.HTTPSConnection(self._host, self._port, context=self._context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port)
        conn.sock = sock  # connected here, so that each error above is classified
        return conn
