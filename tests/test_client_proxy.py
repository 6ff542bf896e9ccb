"""The client through an HTTP proxy named by the environment, as corporate networks run it.

The transport is urllib3's (issue 13 measured requests' adapter layer at ~40% of a request's CPU);
proxies must keep working exactly as they did under requests: ``HTTP(S)_PROXY`` read once,
``NO_PROXY`` honoured, credentials in the proxy URL sent as ``Proxy-Authorization``, never the
API token to anyone but the API.
"""

from __future__ import annotations

import base64
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from numberyo_provider.api import NumberYoClient


class _ForwardingProxy(http.server.ThreadingHTTPServer):
    """A plain-HTTP forward proxy: takes absolute-form requests and relays them."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _ForwardingProxy

    def do_GET(self) -> None:
        self.server.seen.append(
            {
                "target": self.path,
                "proxy_authorization": self.headers.get("Proxy-Authorization"),
                "authorization": self.headers.get("Authorization"),
            }
        )
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization",)
        }
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(urllib.request.Request(self.path, headers=headers), timeout=10) as up:
            body = up.read()
            self.send_response(up.status)
            self.send_header("Content-Type", up.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def proxy() -> Iterator[_ForwardingProxy]:
    server = _ForwardingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_requests_go_through_the_environment_proxy_with_its_credentials(
    numberyo_simulator: Any, proxy: _ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_proxy_env(monkeypatch)
    numberyo_simulator.sim.seed_checks(12)
    host = proxy.url.removeprefix("http://")
    monkeypatch.setenv("HTTP_PROXY", f"http://corp%40user:p%3Ass@{host}")
    with NumberYoClient(numberyo_simulator.token, numberyo_simulator.url) as client:
        page = client.list_checks(2)
        results = client.get_results(page.checks[0].id)
    assert len(page.checks) == 2 and results.type == page.checks[0].type
    assert [s["target"] for s in proxy.seen] == [
        f"{numberyo_simulator.url}/api/checks?page=2",
        f"{numberyo_simulator.url}/api/checks/{page.checks[0].id}/results",
    ]
    expected = "Basic " + base64.b64encode(b"corp@user:p:ss").decode()
    assert {s["proxy_authorization"] for s in proxy.seen} == {expected}
    assert {s["authorization"] for s in proxy.seen} == {f"Bearer {numberyo_simulator.token}"}


def test_no_proxy_bypasses_it(
    numberyo_simulator: Any, proxy: _ForwardingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with NumberYoClient(numberyo_simulator.token, numberyo_simulator.url) as client:
        client.list_checks(1)
    assert proxy.seen == []
