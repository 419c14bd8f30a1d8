"""Airflow face: the sensor that waits for a job to reach a state."""
