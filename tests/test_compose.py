"""Static checks of ``docker-compose.yml`` (and the ``docker/real-api.yml`` override): no Docker
engine runs on the build machines, so everything that can be known without one is checked here:
the Compose specification's JSON schema, paths, pinned images, commands that our CLI and Airflow's
actually parse, the connection JSON, health-gated dependencies and where the data lands.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
REAL_API_FILE = REPO / "docker" / "real-api.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
COMPOSE_SPEC = REPO.parent / "shared" / "schemas" / "compose-spec.json"

AIRFLOW_IMAGE = "apache/airflow:3.3.2"
POSTGRES_IMAGE = "postgres:16"
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
SIMULATOR = "numberyo-simulator"
DATA_MOUNT = PurePosixPath("/opt/airflow/data")

# --------------------------------------------------------------------------------------------
# Loading, with Compose's variable interpolation
# --------------------------------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is not set: Compose refuses to start."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's interpolation (``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-x}``, ``${VAR-x}``,
    ``${VAR:?msg}``, ``${VAR?msg}``) applied to every string of a loaded file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        unset_or_empty = current is None or (current == "" and op is not None and ":" in op)
        if op in (":-", "-") and unset_or_empty:
            return arg
        if op in (":?", "?") and unset_or_empty:
            raise MissingVariable(f"{name}: {arg}")
        return current or ""

    return _VARIABLE.sub(replace, value)


def load(path: Path) -> dict[str, Any]:
    # SafeLoader resolves anchors, aliases and `<<` merge keys, as Compose does.
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load(COMPOSE_FILE)


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    """The file as Compose runs it with no variables set: every default applies."""
    return interpolate(raw, {})


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of every short-syntax volume."""
    result = []
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), f"use the short volume syntax: {volume!r}"
        source, target, *mode = volume.split(":")
        result.append((source, target, mode[0] if mode else "rw"))
    return result


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    pairs = []
    for text in logical:
        instruction, _, arguments = text.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@functools.cache
def _load_spec_validator() -> Any:
    import jsonschema

    spec = json.loads(COMPOSE_SPEC.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(spec)
    validator_class.check_schema(spec)
    return validator_class(spec, format_checker=validator_class.FORMAT_CHECKER)


def _spec_validator() -> Any:
    if not COMPOSE_SPEC.exists():
        pytest.skip(
            f"the Compose JSON schema is not at {COMPOSE_SPEC} (shared/ is expected beside the "
            "repository); cannot validate against the specification"
        )
    return _load_spec_validator()


@pytest.mark.parametrize("path", [COMPOSE_FILE, REAL_API_FILE], ids=lambda p: p.name)
def test_files_validate_against_the_compose_specification(path: Path) -> None:
    validator = _spec_validator()
    raw = load(path)
    as_run = interpolate(raw, {"NUMBERYO_API_TOKEN": "token-for-validation"})
    for document in (raw, as_run):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )


def test_the_spec_validation_catches_a_broken_file(raw: dict[str, Any]) -> None:
    """Proves the validation above can fail: a typo'd key and a bad depends_on condition."""
    validator = _spec_validator()
    broken = json.loads(json.dumps(raw))
    broken["services"]["airflow-scheduler"]["helthcheck"] = {}
    broken["services"]["airflow-triggerer"]["depends_on"]["postgres"]["condition"] = "healthy"
    paths = {"/".join(map(str, e.absolute_path)) for e in validator.iter_errors(broken)}
    assert "services/airflow-scheduler" in paths
    assert any(p.startswith("services/airflow-triggerer/depends_on") for p in paths), paths


def test_the_stack_has_the_expected_services(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == {"postgres", SIMULATOR, *AIRFLOW_SERVICES}
    assert "x-airflow-common" in compose, "Airflow services share one anchored definition"
    for name in AIRFLOW_SERVICES:
        env = environment(services(compose)[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow"), name


def test_images_are_pinned_and_the_dockerfile_builds_on_the_airflow_image(
    compose: dict[str, Any],
) -> None:
    all_services = services(compose)
    assert all_services["postgres"]["image"] == POSTGRES_IMAGE
    for name, service in all_services.items():
        image = service.get("image", "")
        if "build" in service:
            build = service["build"]
            assert (REPO / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        else:
            repository, _, tag = image.rpartition(":")
            assert repository and tag and tag != "latest", f"{name}: pin the image tag ({image})"
    for name in (*AIRFLOW_SERVICES, SIMULATOR):
        assert "build" in all_services[name], f"{name} must run the image with the provider"
    froms = [
        args for instruction, args in dockerfile_instructions(DOCKERFILE) if instruction == "FROM"
    ]
    assert froms == [AIRFLOW_IMAGE]


def test_build_contexts_dockerfiles_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services(compose).items():
        if "build" in service:
            context = REPO / service["build"]["context"]
            assert context.is_dir(), f"{name}: build context {context} is missing"
            assert (context / service["build"]["dockerfile"]).is_file(), name
        for source, target, mode in mounts(service):
            assert PurePosixPath(target).is_absolute(), f"{name}: {target}"
            assert mode in {"ro", "rw"}, f"{name}: {mode}"
            if source.startswith((".", "/")):
                host = (REPO / source).resolve()
                assert host.exists(), f"{name} mounts {source}, which is not in the repository"
                assert REPO in (host, *host.parents), f"{name} mounts {source} outside the repo"
            else:
                assert source in declared_volumes, f"{name}: volume {source} is not declared"


def test_dockerfile_copies_only_files_that_exist_and_reach_the_context() -> None:
    ignore = (DOCKERFILE.parent / f"{DOCKERFILE.name}.dockerignore").read_text().splitlines()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the context is an allow-list"
    copies = [
        args for instruction, args in dockerfile_instructions(DOCKERFILE) if instruction == "COPY"
    ]
    assert copies
    for args in copies:
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        for source in parts[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") in included, f"COPY {source}: excluded by the .dockerignore"
    runs = " ".join(
        args for instruction, args in dockerfile_instructions(DOCKERFILE) if instruction == "RUN"
    )
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in runs, "pin Airflow while installing"
    assert "[dbt" in runs, "install the dbt extra"


def test_simulator_command_parses_with_the_numberyo_cli(compose: dict[str, Any]) -> None:
    pytest.importorskip(
        "numberyo_provider.cli.simulate", reason="the simulate command is not built"
    )
    from numberyo_provider.cli import build_parser

    simulator = services(compose)[SIMULATOR]
    argv = command_argv(simulator)
    assert argv[0] == "numberyo", "the console script the package installs"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "simulate"
    assert callable(args.func)
    assert (args.host, args.port, args.token) == ("0.0.0.0", 8089, "demo-token")
    assert (args.credits, args.seed_checks) == (1000, 250)
    assert simulator["entrypoint"][:2] == ["/usr/bin/dumb-init", "--"], "not via /entrypoint"
    published = [p for p in simulator.get("ports", []) if str(p).endswith(f":{args.port}")]
    assert published, "the simulator port is published"
    probe = " ".join(simulator["healthcheck"]["test"])
    assert f"127.0.0.1:{args.port}/api/checks" in probe and f"Bearer {args.token}" in probe


def _numberyo_connection(service: dict[str, Any]) -> dict[str, Any]:
    raw_value = environment(service)["AIRFLOW_CONN_NUMBERYO_DEFAULT"]
    conn = json.loads(raw_value)
    assert isinstance(conn, dict)
    return conn


def test_numberyo_connection_points_at_the_simulator(compose: dict[str, Any]) -> None:
    simulator_argv = command_argv(services(compose)[SIMULATOR])
    for name in AIRFLOW_SERVICES:
        conn = _numberyo_connection(services(compose)[name])
        assert conn["conn_type"] == "numberyo", name
        url = urlsplit(conn["host"])
        assert (url.scheme, url.hostname) == ("http", SIMULATOR), name
        assert url.port == int(option(simulator_argv, "--port")), name
        assert conn["password"] == option(simulator_argv, "--token"), name
        assert conn["extra"] == {"timeout": 30, "max_retries": 5}, name


def test_real_api_override_requires_a_token_and_replaces_the_connection(
    compose: dict[str, Any],
) -> None:
    override = load(REAL_API_FILE)
    with pytest.raises(MissingVariable, match="NUMBERYO_API_TOKEN"):
        interpolate(override, {})
    token = "42|s3cr3t-Token"
    applied = interpolate(override, {"NUMBERYO_API_TOKEN": token})
    assert set(applied["services"]) <= set(services(compose))
    overridden = set(applied["services"])
    assert overridden == set(AIRFLOW_SERVICES) - {"airflow-init"}
    for name in overridden:
        conn = _numberyo_connection(applied["services"][name])
        assert conn["conn_type"] == "numberyo"
        assert conn["host"] == "https://www.numberyo.tech"
        assert conn["password"] == token


def test_health_gated_dependencies_have_healthchecks(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    gated = 0
    for name, service in all_services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in all_services, f"{name} depends on unknown service {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                gated += 1
                check = all_services[target].get("healthcheck")
                assert check and not check.get("disable") and check.get("test"), (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert all_services[target].get("restart", "no") == "no", target
    assert gated >= len(AIRFLOW_SERVICES)
    for name in AIRFLOW_SERVICES[1:]:
        assert all_services[name]["depends_on"]["airflow-init"] == {
            "condition": "service_completed_successfully"
        }, name
        assert "healthcheck" in all_services[name], name


def test_warehouse_parquet_and_dbt_paths_land_in_the_data_volume(compose: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        service = services(compose)[name]
        env = environment(service)
        by_target = {PurePosixPath(t): (s, m) for s, t, m in mounts(service)}
        assert by_target[DATA_MOUNT][0] == "numberyo-data", name
        warehouse = env["NUMBERYO_WAREHOUSE_URL"]
        assert warehouse.startswith("duckdb:///"), name
        duckdb_file = PurePosixPath(warehouse.removeprefix("duckdb:///"))
        assert duckdb_file.is_absolute() and DATA_MOUNT in duckdb_file.parents, name
        assert PurePosixPath(env["NUMBERYO_DUCKDB_PATH"]) == duckdb_file, "dbt reads the same file"
        for key in ("NUMBERYO_PARQUET_PATH", "DBT_TARGET_PATH", "DBT_LOG_PATH"):
            assert DATA_MOUNT in PurePosixPath(env[key]).parents, f"{name}: {key}"
        dbt_dir = PurePosixPath(env["DBT_PROJECT_DIR"])
        assert by_target[dbt_dir] == ("./dbt", "ro"), name
        assert PurePosixPath(env["DBT_PROFILES_DIR"]) == dbt_dir
        assert by_target[PurePosixPath("/opt/airflow/dags")][0] == "./dags", name


def test_secrets_come_from_the_environment_with_dev_only_defaults(raw: dict[str, Any]) -> None:
    env = raw["x-airflow-common"]["environment"]
    for key in (
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
    ):
        assert re.fullmatch(r"\$\{[A-Z_]+:-[^}]+\}", env[key]), f"{key}: ${{VAR:-dev default}}"
    from cryptography.fernet import Fernet

    Fernet(interpolate(env["AIRFLOW__CORE__FERNET_KEY"], {}))  # a valid key, or it raises


@pytest.mark.slow
def test_airflow_commands_and_connection_parse_with_airflow(compose: dict[str, Any]) -> None:
    from airflow.cli.cli_parser import get_parser
    from airflow.models.connection import Connection

    parser = get_parser()

    def parse(argv: list[str], where: str) -> None:
        if argv and argv[0] == "airflow":
            argv = argv[1:]  # the image's entrypoint accepts both forms
        try:
            parsed = parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{where}: `airflow {' '.join(argv)}` does not parse ({exc})")
        assert callable(parsed.func), where

    for name in AIRFLOW_SERVICES:
        service = services(compose)[name]
        parse(command_argv(service), f"{name} command")
        test = service.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD-SHELL"] and test[1].startswith("airflow "):
            parse(shlex.split(test[1].replace("${HOSTNAME}", "host")), f"{name} healthcheck")
        conn_json = environment(service)["AIRFLOW_CONN_NUMBERYO_DEFAULT"]
        conn = Connection.from_json(conn_json, conn_id="numberyo_default")
        assert conn.conn_type == "numberyo"
        assert conn.password == "demo-token"
        assert conn.extra_dejson == {"timeout": 30, "max_retries": 5}

    with pytest.raises(SystemExit):
        parser.parse_args(["api-servr"])  # the check above can fail


def test_docs_explain_how_to_run_it() -> None:
    doc = (REPO / "docs" / "docker-compose.md").read_text(encoding="utf-8")
    for needle in ("docker compose up", "http://localhost:8080", "docker/real-api.yml", "dev"):
        assert needle in doc, needle
