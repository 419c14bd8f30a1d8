"""Airflow face: operator links to the AWS console (shipping label, S3 log)."""
