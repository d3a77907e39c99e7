"""One Prefect test server for the whole session: starting it costs 10-20 s on a quiet
machine and minutes on a loaded one, so the harness waits up to 5 minutes."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield
