"""The "Import/Export" page of the Airflow UI: every job of an AWS connection, where its device is.

``plugin.ImportExportPlugin`` is the Airflow plugin; ``app`` serves the page and its JSON,
``reader`` reads the service (bounded, cached), ``shipments`` turns answers into rows and
``dag_runs`` finds the DAG run that created a job. See docs/ui.md.
"""
