"""What Airflow's ProvidersManager learns about this package (entry point
``apache_airflow_provider``). Kept import-light: Airflow calls it at start-up.

The connection form's labels and extra fields come from ``conn-fields`` and ``ui-field-behaviour``,
which Airflow reads only from 3.2 on; the floor is the oldest version CI tests
(:data:`MIN_AIRFLOW_VERSION`, the ``apache-airflow`` floor of pyproject.toml).
"""

from __future__ import annotations

from typing import Any

from numberyo_provider import __version__

_INTEGRATION = "NumberYo"
#: The oldest Airflow this provider is tested on (pyproject.toml's floor; tests check they agree).
MIN_AIRFLOW_VERSION = "3.3.2"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-numberyo",
        "name": "NumberYo",
        "description": "Check phone numbers (HLR, Verify) with the NumberYo API and sync the "
        "check history into Parquet, DuckDB or any SQLAlchemy warehouse.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://www.numberyo.tech",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["numberyo_provider.hooks.numberyo"],
            }
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "numberyo_provider.operators.sync",
                    "numberyo_provider.operators.check",
                    "numberyo_provider.operators.status",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["numberyo_provider.sensors.new_checks"],
            }
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["numberyo_provider.triggers.new_checks"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "numberyo_provider.hooks.numberyo.NumberYoHook",
                "hook-name": "NumberYo",
                "connection-type": "numberyo",
                "ui-field-behaviour": {
                    # Port stays visible although the base URL can carry it: on Airflow 3.3.2 the
                    # UI's Test button works only for a connection with a stored port (it sends
                    # port 0 for an empty one; apache/airflow#73298). See docs/connection.md.
                    "hidden-fields": ["login", "schema"],
                    "relabeling": {"host": "Base URL", "password": "API token"},
                    "placeholders": {"host": "https://www.numberyo.tech", "port": "443"},
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "schema": {
                            "type": ["number", "null"],
                            "default": 30,
                            "exclusiveMinimum": 0,
                        },
                        "description": "The longest one request may take, connect plus the whole "
                        "answer; a slower answer is cut off and retried (a paid POST is not).",
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (seconds)",
                        "schema": {"type": ["number", "null"], "default": 5, "exclusiveMinimum": 0},
                    },
                    "max_response_mb": {
                        "label": "Largest answer (MiB)",
                        "schema": {
                            "type": ["number", "null"],
                            "default": 32,
                            "exclusiveMinimum": 0,
                        },
                        "description": "A larger API answer is refused without being read whole.",
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
                        "description": "Retries for GETs; a paid POST is retried only when the "
                        "API provably did nothing.",
                    },
                    "requests_per_second": {
                        "label": "Requests per second",
                        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
                        "description": "Client-side rate limit; empty means none.",
                    },
                    "verify_ssl": {
                        "label": "Verify TLS certificates",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "privacy_secret": {
                        "label": "Privacy HMAC secret",
                        "schema": {"type": ["string", "null"], "format": "password"},
                        "description": "Key for the keyed-hash privacy mode of IMSI/MSISDN.",
                    },
                },
            }
        ],
    }
