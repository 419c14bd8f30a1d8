"""Airflow face: the trigger that polls GetStatus in the triggerer."""
