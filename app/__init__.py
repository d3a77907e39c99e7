"""Composition roots: the ``hscode`` command line (``app.cli``), ``hscode serve``
(``app.serve``) and ``hscode demo`` (``app.demo``).

The top layer: it wires the domain core (``hscode``), the Prefect flows and the deployments
together; nothing below imports it.
"""
