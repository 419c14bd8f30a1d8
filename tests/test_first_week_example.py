"""``make test`` runs the DAG test users copy (dags_examples/test_example_dags.py) unchanged.

Here the plugin's ``importexport_airflow_db`` is this suite's ``airflow_db`` (so the DAG runs in a
child process with a hard time limit, conftest.py) and the example DAGs are copied into this
suite's dags folder. The child starts fresh before and after the test, because the example DAGs
read their settings when their config module is first imported.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dags_examples.test_example_dags import device, test_the_migration_dag_imports_every_file  # noqa: F401
from tests import helpers
from tests.conftest import DAGS_FOLDER

EXAMPLES = Path(__file__).resolve().parents[1] / "dags_examples"

pytestmark = pytest.mark.slow


@pytest.fixture
def importexport_airflow_db(airflow_db: None) -> Iterator[None]:
    helpers._discard_worker()
    yield
    helpers._discard_worker()


@pytest.fixture
def dags_folder() -> Path:
    DAGS_FOLDER.mkdir(parents=True, exist_ok=True)
    for source in [*EXAMPLES.glob("example_*.py"), EXAMPLES / "importexport_example_config.py"]:
        shutil.copy(source, DAGS_FOLDER / source.name)
    return DAGS_FOLDER
