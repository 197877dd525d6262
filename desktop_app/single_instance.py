"""One Shoebox window per library: a second start hands its paths to the first one and leaves.

    guard = SingleInstance(server_name(library_home()))
    if not guard.claim(paths):  # a window is open for this library: it has the paths now
        return 0
    guard.received.connect(...)  # this process is the first: later starts reach it

The first process listens on a local socket (a Unix socket, a named pipe on Windows) whose
name is made from the user and the library folder, so two libraries can be open at once
and other users never reach this one.  A later start connects, sends one line of JSON
(``{"paths": [...]}``), waits for ``ok`` and exits.  A socket left behind by a crash
answers nobody: it is removed and the new process listens in its place.  The check and
the listening happen under a lock file, so two starts at the same moment do not both
become the first.

Only QtCore and QtNetwork are imported here: the second process must leave quickly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QByteArray, QDir, QLockFile, QObject, Qt, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_MS = 1000  # a live window accepts at once; a stale socket refuses at once
ANSWER_TIMEOUT_MS = 5000  # a busy window (a dialog open, a long paint) still answers within this
LOCK_TIMEOUT_MS = 5000
MAX_MESSAGE_BYTES = 4 << 20  # a command line's worth of paths and more; anything longer is not ours
ANSWER = b"ok\n"


class InstanceError(RuntimeError):
    """The running window could not be reached, nor could this process take its place."""


def library_home(home: str | os.PathLike | None = None) -> Path:
    """The library folder the app opens: ``home``, else ``SHOEBOX_HOME``, else the user data folder."""
    if home is None:
        env = os.environ.get("SHOEBOX_HOME")
        if env:
            home = env
        else:
            from engine.settings import default_home

            home = default_home()
    return Path(home).expanduser().resolve()


def server_name(home: str | os.PathLike) -> str:
    """The local socket name for ``home`` and the current user (short: Unix socket paths are limited)."""
    # Windows has no user ids; its named pipes only need a name that differs per user.
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "")
    digest = hashlib.sha256(f"{user}\0{Path(home)}".encode()).hexdigest()[:24]
    return f"shoebox-{digest}"


def encode_message(paths: list[str]) -> bytes:
    return json.dumps({"paths": list(paths)}, ensure_ascii=False).encode("utf-8") + b"\n"


def decode_message(data: bytes) -> list[str]:
    """The paths in one message; raises ValueError when it is not a message from a Shoebox start."""
    message = json.loads(data.decode("utf-8"))
    paths = message.get("paths") if isinstance(message, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ValueError("not a list of paths")
    return paths


def bring_to_front(window: Any) -> None:
    """Show ``window`` above the others and give it the keyboard: un-minimised, raised, activated.

    Window managers may refuse to move the focus to a process the person did not click
    (focus-stealing prevention); the window then asks for attention instead.
    """
    state = window.windowState()
    if state & Qt.WindowState.WindowMinimized:
        window.setWindowState((state & ~Qt.WindowState.WindowMinimized) | Qt.WindowState.WindowActive)
    window.show()
    window.raise_()
    window.activateWindow()
    from PySide6.QtWidgets import QApplication

    QApplication.alert(window)


class SingleInstance(QObject):
    """The first process of a library listens; later ones hand it their paths (see the module docs).

    Signals: ``received(list)`` with the paths a later start handed over (an empty list:
    it only asked for the window), on the GUI thread.
    """

    received = Signal(list)

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self.server: QLocalServer | None = None
        self._buffers: dict[QLocalSocket, bytearray] = {}

    @property
    def lock_path(self) -> str:
        return os.path.join(QDir.tempPath(), f"{self.name}.lock")

    def claim(self, paths: list[str]) -> bool:
        """True when this process is now the first (it listens); False when a running one took ``paths``.

        Raises :class:`InstanceError` when a window is running but does not answer, or the
        socket cannot be opened.
        """
        lock = QLockFile(self.lock_path)
        if not lock.tryLock(LOCK_TIMEOUT_MS):
            raise InstanceError(
                f"Another Shoebox is starting and holds {self.lock_path}; try again, or delete that file."
            )
        try:
            if self.hand_over(paths):
                return False
            self.listen()
            return True
        finally:
            lock.unlock()

    def hand_over(self, paths: list[str]) -> bool:
        """Give ``paths`` to the window already running; False when none is (nobody answers the socket).

        Blocks for at most a few seconds; raises :class:`InstanceError` when a window
        took the connection but did not confirm.
        """
        socket = QLocalSocket()
        socket.connectToServer(self.name)
        if not socket.waitForConnected(CONNECT_TIMEOUT_MS):
            return False
        socket.write(QByteArray(encode_message(paths)))
        socket.flush()
        answer = b""
        while not answer.endswith(b"\n") and len(answer) < len(ANSWER):
            if not socket.waitForReadyRead(ANSWER_TIMEOUT_MS):
                break
            answer += bytes(socket.readAll().data())
        socket.disconnectFromServer()
        if answer != ANSWER:
            raise InstanceError(
                "Shoebox is already open for this library but did not answer; close it, or wait and try again."
            )
        return True

    def listen(self) -> None:
        """Listen for later starts, removing a socket a crashed process left behind."""
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            # Nobody answered (hand_over said so), so a socket file still there is stale.
            QLocalServer.removeServer(self.name)
            if not server.listen(self.name):
                raise InstanceError(f"Shoebox cannot open its local socket {self.name!r}: {server.errorString()}")
        server.newConnection.connect(self._accept)
        self.server = server

    def close(self) -> None:
        """Stop listening and drop the connections still open."""
        for socket in list(self._buffers):
            self._forget(socket)
        if self.server is not None:
            self.server.close()
            self.server.deleteLater()
            self.server = None

    # Slots are methods of this QObject (not lambdas), so Qt disconnects them when it is destroyed.

    def _accept(self) -> None:
        server = self.server
        while server is not None and server.hasPendingConnections():
            socket = server.nextPendingConnection()
            self._buffers[socket] = bytearray()
            socket.readyRead.connect(self._ready_read)
            socket.disconnected.connect(self._disconnected)
            self._read(socket)

    def _ready_read(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket):
            self._read(socket)

    def _disconnected(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket):
            self._forget(socket)

    def _read(self, socket: QLocalSocket) -> None:
        buffer = self._buffers.get(socket)
        if buffer is None:
            return
        buffer += bytes(socket.readAll().data())
        if b"\n" not in buffer:
            if len(buffer) > MAX_MESSAGE_BYTES:
                log.warning("a local connection sent %d bytes without a message; closed", len(buffer))
                self._forget(socket)
            return
        line = bytes(buffer[: buffer.index(b"\n")])
        self._buffers[socket] = bytearray()
        try:
            paths = decode_message(line)
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.warning("a local connection sent something that is not a Shoebox message (%s); closed", exc)
            self._forget(socket)
            return
        socket.write(QByteArray(ANSWER))
        socket.flush()
        self.received.emit(paths)

    def _forget(self, socket: QLocalSocket) -> None:
        # The server owns its sockets; one may already be gone when the server closed first.
        if self._buffers.pop(socket, None) is not None and shiboken6.isValid(socket):
            socket.disconnectFromServer()
            socket.deleteLater()
