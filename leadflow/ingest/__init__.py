"""Ingest: reading input files, validating them with Great Expectations, loading them
all-or-nothing into the state store and the lake, and the daily flow's inbox."""
