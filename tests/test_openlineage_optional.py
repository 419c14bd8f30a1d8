"""Without the [openlineage] extra nothing changes: a Python where OpenLineage cannot be imported.

A ``sitecustomize.py`` on PYTHONPATH installs a meta-path finder that refuses ``openlineage`` and
``airflow.providers.openlineage``, as if neither were installed; the check runs in that Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.test_examples import EXAMPLES

BLOCKER = '''
import importlib.metadata
import sys

import importlib_metadata

MODULES = ("openlineage", "airflow.providers.openlineage")
DISTRIBUTIONS = {
    "apache-airflow-providers-openlineage",
    "openlineage-python",
    "openlineage-integration-common",
    "openlineage-sql",
}


class NoOpenLineage:
    """Refuse OpenLineage's modules as an uninstalled package's would be refused."""

    def find_spec(self, name, path=None, target=None):
        if any(name == m or name.startswith(m + ".") for m in MODULES):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def hide_distributions(finder):
    """And hide their metadata (Airflow finds providers through their entry points)."""
    found = finder.find_distributions

    def find_distributions(*args, **kwargs):
        for dist in found(*args, **kwargs):
            if (dist.metadata["Name"] or "").lower().replace("_", "-") not in DISTRIBUTIONS:
                yield dist

    finder.find_distributions = staticmethod(find_distributions)


sys.meta_path.insert(0, NoOpenLineage())
hide_distributions(importlib.metadata.MetadataPathFinder)
hide_distributions(importlib_metadata.MetadataPathFinder)
'''

CHECK = """
import importlib, importlib.metadata, sys

for name in ("openlineage.client", "airflow.providers.openlineage.extractors"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"the blocker let {name} in")
for dist in ("apache-airflow-providers-openlineage", "openlineage-python"):
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        raise SystemExit(f"the blocker shows {dist}")

from airflow.dag_processing.dagbag import DagBag
from airflow_provider_importexport import openlineage
from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator
from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor
from tests.helpers import import_manifest

assert openlineage.AVAILABLE is False
examples = sys.argv[1]
bag = DagBag(dag_folder=examples, bundle_path=examples)
assert bag.import_errors == {}, bag.import_errors
assert len(bag.dag_ids) == 3, bag.dag_ids

create = ImportExportCreateJobOperator(task_id="create", manifest=import_manifest("raw"))
sensor = ImportExportJobSensor(task_id="wait", job_id="ABCDE")
for task in (create, sensor):
    assert task.get_openlineage_facets_on_start() is None
    assert task.get_openlineage_facets_on_complete(None) is None
    assert task.get_openlineage_facets_on_failure(None) is None
print("no-openlineage-ok")
"""


def test_without_the_extra_operators_import_dags_parse_and_lineage_is_none(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    (tmp_path / "check.py").write_text(textwrap.dedent(CHECK))
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(root), str(EXAMPLES)]))
    done = subprocess.run(
        [sys.executable, str(tmp_path / "check.py"), str(EXAMPLES)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().endswith("no-openlineage-ok")
