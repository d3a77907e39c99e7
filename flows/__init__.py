"""Prefect flows: one module per flow, composing the thin tasks in ``tasks/``."""
