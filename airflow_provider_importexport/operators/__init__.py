"""Airflow face: operators that create, update and cancel jobs and fetch shipping labels."""
