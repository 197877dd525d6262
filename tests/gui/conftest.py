import pytest


@pytest.fixture(autouse=True)
def _no_thread_left_running():
    """A test must not leave pool threads working after it ends."""
    yield
    from PySide6.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    assert pool.waitForDone(10_000), "a background task was still running after the test"
