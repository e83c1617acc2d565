"""Prefect flows: the orchestration of leadflow's tasks."""
