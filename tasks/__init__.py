"""Prefect tasks: thin wrappers over leadflow's plain functions, adding retries and logging."""
