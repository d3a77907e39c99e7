"""Thin Prefect ``@task`` wrappers around the domain functions in ``hscode/``.

No domain logic lives here: a task resolves nothing but its inputs, calls one
domain function, and publishes what it did as an artifact.
"""
