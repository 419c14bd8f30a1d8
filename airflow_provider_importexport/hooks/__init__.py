"""Airflow face: the hook that wraps the service's boto3 client."""
