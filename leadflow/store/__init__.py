"""The state store: the engine/session factory, bulk loads, and the run lock."""
