"""Which DAG run created a job: the run marker in its manifest, matched against task instances.

The create operator writes ``airflow-importexport:<hash of dag/task/run/map index>`` into
the manifest's ``generator`` field. A hash cannot be read back, so the page hashes the
create tasks' instances in the metadata DB the same way (the operator's own ``marker()``)
and looks the job's marker up among them.
"""

from __future__ import annotations

import datetime as dt
import functools

from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator, run_marker
from airflow_provider_importexport.plugins.shipments import DagRunRef

#: Task instances of these operators can have created jobs (TaskInstance.operator is the class name).
CREATE_OPERATORS = (ImportExportCreateJobOperator.__name__,)
#: A task instance may have started this long before the oldest job it could have created.
LOOKBACK = dt.timedelta(days=1)
#: The most task instances one lookup reads (newest first).
MAX_TASK_INSTANCES = 20_000


@functools.lru_cache(maxsize=65_536)
def marker_of(dag_id: str, task_id: str, run_id: str, map_index: int) -> str:
    """The create operator's marker for this task instance, computed by the operator's own function."""
    return run_marker(dag_id, task_id, run_id, map_index)


def find_dag_runs(markers: set[str], since: dt.datetime | None) -> dict[str, DagRunRef]:
    """The DAG run (and task) of each marker found among the create tasks started since ``since``."""
    if not markers:
        return {}
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(TI.dag_id, TI.task_id, TI.run_id, TI.map_index).where(TI.operator.in_(CREATE_OPERATORS))
    if since is not None:
        query = query.where(TI.start_date >= since - LOOKBACK)
    query = query.order_by(TI.start_date.desc()).limit(MAX_TASK_INSTANCES)
    found: dict[str, DagRunRef] = {}
    with create_session(scoped=False) as session:
        for dag_id, task_id, run_id, map_index in session.execute(query):
            mark = marker_of(dag_id, task_id, run_id, map_index)
            if mark in markers:
                found.setdefault(mark, DagRunRef(dag_id=dag_id, run_id=run_id, task_id=task_id))
    return found
