"""Airflow discovers the provider through its entry point, as it would in a real deployment."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from numberyo_provider.provider_info import get_provider_info


def test_provider_info_is_valid_for_airflow() -> None:
    import airflow

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_every_module_named_in_provider_info_imports() -> None:
    import importlib

    info = get_provider_info()
    modules = [
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for entry in info[kind]
        for m in entry["python-modules"]
    ]
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing.append(f"{name}: {exc}")
    assert not missing, missing


def test_providers_manager_finds_numberyo_connection_type() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "airflow-provider-numberyo" in ProvidersManager().providers
    # Workers resolve a connection's hook through the Task SDK's runtime manager.
    hook_info = ProvidersManagerTaskRuntime().hooks["numberyo"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "numberyo_provider.hooks.numberyo.NumberYoHook"
    assert hook_info.connection_id_attribute_name == "numberyo_conn_id"
    assert hook_info.hook_name == "NumberYo"


def test_connection_form_metadata() -> None:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    behaviour = pm.field_behaviours["numberyo"]
    # Port stays visible: the Test button of Airflow 3.3.2 needs a stored port (see
    # tests/test_connection_test_button.py).
    assert set(behaviour["hidden_fields"]) == {"login", "schema"}
    assert behaviour["placeholders"]["port"] == "443"
    assert behaviour["relabeling"]["password"] == "API token"
    widgets = pm.connection_form_widgets
    for extra in ("timeout", "max_retries", "requests_per_second", "verify_ssl"):
        assert f"extra__numberyo__{extra}" in widgets
    assert widgets["extra__numberyo__privacy_secret"].is_sensitive


@pytest.mark.parametrize("kind", ["hooks", "operators", "sensors", "triggers"])
def test_provider_info_names_modules_of_this_package(kind: str) -> None:
    for entry in get_provider_info()[kind]:
        assert all(m.startswith("numberyo_provider.") for m in entry["python-modules"])


def test_the_airflow_floor_is_the_tested_version_everywhere() -> None:
    """pyproject's floor is the Airflow CI installs (constraints.txt), and the docs say so: the
    connection form's metadata needs >= 3.2, and older versions are not tested."""
    import re

    from packaging.version import Version

    from numberyo_provider.provider_info import MIN_AIRFLOW_VERSION

    repo = Path(__file__).resolve().parents[1]
    pyproject = (repo / "pyproject.toml").read_text()
    [airflow_dep] = re.findall(r'^\s*"(apache-airflow[<>=].*)",', pyproject, flags=re.MULTILINE)
    assert airflow_dep == f"apache-airflow>={MIN_AIRFLOW_VERSION},<4"
    pins = dict(
        line.split("==", 1)
        for line in (repo / "constraints.txt").read_text().splitlines()
        if "==" in line
    )
    assert pins["apache-airflow"] == MIN_AIRFLOW_VERSION, "CI tests the floor"
    assert Version(MIN_AIRFLOW_VERSION) >= Version("3.2"), "conn-fields need Airflow 3.2"
    for doc in ("README.md", "docs/connection.md"):
        assert f"Airflow >= {MIN_AIRFLOW_VERSION}" in (repo / doc).read_text(), doc
