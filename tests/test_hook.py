"""The hook builds a working client from an Airflow connection given in the environment."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from numberyo_provider.errors import ConfigurationError
from numberyo_provider.hooks.numberyo import NumberYoHook


def _set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **conn: Any) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "numberyo", **conn})
    )


def test_hook_from_environment_json_connection(
    numberyo_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    numberyo_simulator.sim.seed_checks(3)
    _set_conn(
        monkeypatch,
        "numberyo_default",
        host=numberyo_simulator.url,
        password=numberyo_simulator.token,
        extra={"timeout": 7, "connect_timeout": 2, "max_retries": 2, "verify_ssl": False},
    )
    hook = NumberYoHook()
    with hook.get_client(pool_size=4) as client:
        assert client.base_url == numberyo_simulator.url
        page = client.list_checks(1)
    assert page.pagination.total == 3
    assert hook.settings["timeout"] == (2.0, 7.0)
    assert hook.settings["max_retries"] == 2
    assert hook.settings["verify_ssl"] is False


def test_hook_from_uri_connection_with_string_extras(
    numberyo_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_port = numberyo_simulator.url.removeprefix("http://")
    monkeypatch.setenv(
        "AIRFLOW_CONN_NY_URI",
        f"numberyo://:{numberyo_simulator.token}@{host_port}/?max_retries=1&requests_per_second=50",
    )
    hook = NumberYoHook("ny_uri")
    # A URI connection has no scheme for the API: the hook assumes https unless host has one.
    assert hook.settings["base_url"] == f"https://{host_port}"
    assert hook.settings["max_retries"] == 1
    assert hook.settings["requests_per_second"] == 50.0


def test_test_connection_true(numberyo_simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    numberyo_simulator.sim.seed_checks(12)
    _set_conn(monkeypatch, "ny_ok", host=numberyo_simulator.url, password=numberyo_simulator.token)
    ok, message = NumberYoHook("ny_ok").test_connection()
    assert ok, message
    assert "12 checks" in message


def test_test_connection_false_on_wrong_token(
    numberyo_simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "wrong-token-must-not-leak"
    _set_conn(monkeypatch, "ny_bad", host=numberyo_simulator.url, password=secret)
    ok, message = NumberYoHook("ny_bad").test_connection()
    assert not ok
    assert "401" in message
    assert secret not in message


def test_test_connection_false_when_server_down(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _set_conn(monkeypatch, "ny_down", host=f"http://127.0.0.1:{port}", password="tok-down")
    ok, message = NumberYoHook("ny_down").test_connection()
    assert not ok
    assert "tok-down" not in message


def test_missing_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "ny_notoken", host="http://127.0.0.1:1")
    with pytest.raises(ConfigurationError, match="no API token"):
        NumberYoHook("ny_notoken").get_client()


def test_bad_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(
        monkeypatch, "ny_badextra", host="http://x", password="t", extra={"max_retries": "many"}
    )
    with pytest.raises(ConfigurationError, match="max_retries"):
        NumberYoHook("ny_badextra").get_client()


def test_token_is_registered_with_airflow_secret_masker(
    numberyo_simulator: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.sdk._shared.secrets_masker.secrets_masker import _secrets_masker

    token = numberyo_simulator.token
    _set_conn(monkeypatch, "ny_mask", host=numberyo_simulator.url, password=token)
    NumberYoHook("ny_mask").get_client().close()
    assert _secrets_masker().redact(f"Bearer {token}") == "Bearer ***"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("numberyo_provider").info("no token here")
    assert token not in caplog.text


@pytest.mark.parametrize(
    ("host", "port", "base_url"),
    [
        ("http://127.0.0.1:8089", None, "http://127.0.0.1:8089"),
        ("http://127.0.0.1", 8089, "http://127.0.0.1:8089"),
        ("http://127.0.0.1:8089", 8089, "http://127.0.0.1:8089"),  # both: they must agree
        ("https://api.example/", 8443, "https://api.example:8443/"),
        ("www.numberyo.tech", 443, "https://www.numberyo.tech:443"),
        (None, 443, None),  # production, with the port filled in for the Test button
        (None, None, None),
    ],
)
def test_port_field_merges_into_the_base_url(
    monkeypatch: pytest.MonkeyPatch, host: str | None, port: int | None, base_url: str | None
) -> None:
    _set_conn(monkeypatch, "ny_port", host=host, port=port, password="token-123456")
    assert NumberYoHook("ny_port").settings.get("base_url") == base_url


@pytest.mark.parametrize(
    ("host", "port", "needle"),
    [
        ("http://127.0.0.1:8089", 443, "Port 443 differs from the port of the Base URL"),
        (None, 8089, "Port 8089 but no Base URL"),
    ],
)
def test_a_port_that_contradicts_the_base_url_is_an_error(
    monkeypatch: pytest.MonkeyPatch, host: str | None, port: int, needle: str
) -> None:
    _set_conn(monkeypatch, "ny_port", host=host, port=port, password="token-123456")
    with pytest.raises(ConfigurationError, match=needle) as info:
        _ = NumberYoHook("ny_port").settings
    assert "\n" not in str(info.value) and "token-123456" not in str(info.value)
