"""airflow-provider-numberyo: the NumberYo phone-number checking API for Airflow, SQL and dbt.

The core (client, simulator, extract/land/load, CLI) imports nothing from Airflow; the Airflow
layer lives in ``hooks``, ``operators``, ``sensors`` and ``triggers``.
"""

__version__ = "0.1.0"

from numberyo_provider import _moved

_moved.install()
