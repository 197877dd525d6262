import pytest


@pytest.fixture(autouse=True)
def _no_thread_left_running():
    """A test must not leave pool threads working after it ends."""
    yield
    from desktop_app.tasks import wait_for_all

    assert wait_for_all(10_000), "a background task was still running after the test"
