"""Scoring: the condition language and the rules compiled to one DuckDB query, the aggregate
ledger that carries it from day to day, and the scoring services (write-back, explain, history)."""
