"""pytest set-up for testing DAGs against the emulator (copy it beside your DAG tests; docs/testing.md).

Runs before anything imports Airflow: a throwaway AIRFLOW_HOME (its SQLite metadata DB is
migrated by the plugin's ``importexport_airflow_db`` fixture) and the folder of the DAGs under test.
"""

from __future__ import annotations

# [START testing_conftest]
import os
import tempfile
from pathlib import Path

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-dag-tests-")  # never a real deployment's DB
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parent)  # where your DAGs are
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

pytest_plugins = ["airflow_provider_importexport.pytest_plugin"]
# [END testing_conftest]
