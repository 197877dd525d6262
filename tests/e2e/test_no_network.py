"""Indexing never touches the network: sockets are blocked and a whole folder is indexed."""

from __future__ import annotations

import shutil
import socket

import pytest

from engine.library import Library
from engine.settings import load_settings
from tests.conftest import TINY_ENV
from tests.helpers import make_photo, make_text
from tests.unit._data import corpus_dir


class NetworkUsed(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise NetworkUsed(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_network_really_is_blocked(no_network):
    with pytest.raises(NetworkUsed):
        socket.create_connection(("example.org", 80))


def test_indexing_and_searching_offline(tmp_path, no_network):
    root = tmp_path / "files"
    make_photo(root / "a.jpg", 1)
    make_photo(root / "b.png", 2)
    make_text(root / "n.txt", "offline notes about the attic")
    shutil.copy(corpus_dir("audio") / "jfk.mp3", root / "jfk.mp3")
    shutil.copy(corpus_dir("pdfs") / "crazyones.pdf", root / "crazyones.pdf")
    # A fresh home: the models are built and their weights resolved with the network blocked.
    with Library(load_settings(home=tmp_path / "home", env=dict(TINY_ENV))) as library:
        summary = library.index([root])
        assert summary.failed == [] and summary.added == 5
        assert library.search("attic").results[0].path == str(root / "n.txt")
