"""Shoebox as an application: its icon, About box, desktop entry, installed resources, one window per library."""

from __future__ import annotations

import json
import mimetypes
import os
import shutil
import socket
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

import pytest
from PySide6.QtCore import QDir, QObject, Qt, Signal
from PySide6.QtGui import QImage

import desktop_app.__main__ as entry
from desktop_app.main_window import MainWindow, app_icon
from desktop_app.single_instance import SingleInstance, bring_to_front, library_home, server_name
from engine.bundled import RESOURCES, resource_path, version
from engine.extractors import AUDIO_EXTENSIONS, DOCUMENT_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from tests.helpers import make_text

ROOT = Path(__file__).resolve().parents[2]
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A subprocess environment that keeps the app's settings and the user's folders in tmp_path."""
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        HOME=str(tmp_path / "user"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


# -- the icon ------------------------------------------------------------------------------------


def test_the_icon_is_drawn_at_every_size_from_the_svg():
    svg = RESOURCES / "icons" / "shoebox.svg"
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    for size in SIZES:
        image = QImage(str(resource_path("icons", f"shoebox-{size}.png")))
        assert (image.width(), image.height()) == (size, size)
        assert image.hasAlphaChannel()
        assert image.pixelColor(0, 0).alpha() == 0  # a transparent corner: it sits on any panel
        assert image.pixelColor(size // 4, size // 2).alpha() == 255  # the box itself is opaque
    # The PNGs are what scripts/render_icons.py makes of the SVG today (within antialiasing noise).
    from scripts.render_icons import render

    fresh = QImage.fromData(render(svg, 32))
    committed = QImage(str(resource_path("icons", "shoebox-32.png")))

    def channels(image: QImage, x: int, y: int) -> list[int]:
        argb = image.pixel(x, y)
        return [(argb >> shift) & 0xFF for shift in (24, 16, 8, 0)]

    differing = 0
    for x in range(32):
        for y in range(32):
            pairs = zip(channels(fresh, x, y), channels(committed, x, y), strict=True)
            differing += max(abs(a - b) for a, b in pairs) > 8
    assert differing <= 10, f"{differing} pixels differ: run python -m scripts.render_icons"


def test_the_window_and_the_application_carry_the_icon(qtbot, library):
    icon = app_icon()
    assert not icon.isNull()
    assert {16, 32, 256} <= {size.width() for size in icon.availableSizes()}
    for size in (16, 32, 48, 256):
        pixmap = icon.pixmap(size, size)
        assert not pixmap.isNull() and pixmap.width() == size
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    assert not window.windowIcon().isNull()
    assert window.windowIcon().pixmap(32, 32).toImage() == icon.pixmap(32, 32).toImage()
    window.close()


def test_shoebox_app_names_itself_for_the_desktop(tmp_path):
    # In a process of its own: the names go into the QApplication and QSettings of the whole process.
    script = (
        "import desktop_app.__main__ as entry\n"
        "app, window = entry.create_window(['shoebox-app'])\n"
        "print(app.applicationName(), app.applicationDisplayName(), app.organizationName(), app.desktopFileName())\n"
        "print(app.windowIcon().isNull(), sorted(s.width() for s in app.windowIcon().availableSizes()))\n"
        "import os; os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=_env(tmp_path, SHOEBOX_HOME=str(tmp_path / "lib")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    assert lines == ["Shoebox Shoebox Shoebox shoebox", f"False {sorted(SIZES)}"], done.stderr


# -- the About box ---------------------------------------------------------------------------------


def test_the_about_box_says_version_licence_and_where_the_library_is(qtbot, library):
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    window._about()
    box = window.about_dialog
    assert box.isVisible() and box.windowTitle() == "About Shoebox"
    text = box.text()
    assert f"Shoebox {version()}" in text
    assert "MIT licence" in text
    assert str(library.settings.home) in text
    assert not box.iconPixmap().isNull()
    box.close()
    window.close()


def test_the_version_comes_from_the_package_metadata(capsys):
    from importlib.metadata import version as installed

    assert version() == installed("shoebox")
    with pytest.raises(SystemExit) as exited:
        entry.main(["shoebox-app", "--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"Shoebox {installed('shoebox')}\n"


# -- the desktop entry ------------------------------------------------------------------------------


def _validate(path: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate is not installed (Debian/Ubuntu: apt install desktop-file-utils)")
    return subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)


def _entry_keys(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_the_desktop_entry_is_valid():
    path = resource_path("shoebox.desktop")
    checked = _validate(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "error:" not in checked.stdout
    keys = _entry_keys(path.read_text(encoding="utf-8"))
    assert keys["Exec"] == "shoebox-app %F"
    assert keys["Icon"] == "shoebox"
    assert keys["Terminal"] == "false"
    assert keys["Categories"] == "Utility;Office;Graphics;"
    assert keys["StartupWMClass"] == "Shoebox"  # X11's WM_CLASS class is the application name


def test_the_desktop_entry_offers_every_kind_of_file_shoebox_reads():
    types = set(_entry_keys(resource_path("shoebox.desktop").read_text(encoding="utf-8"))["MimeType"].split(";"))
    assert "inode/directory" in types
    missing = []
    for extension in sorted(IMAGE_EXTENSIONS | DOCUMENT_EXTENSIONS | AUDIO_EXTENSIONS | VIDEO_EXTENSIONS):
        guessed, _encoding = mimetypes.guess_type("file" + extension, strict=False)
        # Python calls .mts a 3D model; freedesktop's video/mp2t is listed for it and .m2ts.
        if guessed and extension != ".mts" and guessed not in types:
            missing.append(f"{extension} ({guessed})")
    assert not missing, f"MimeType lacks {missing}"
    assert "video/mp2t" in types


def test_install_and_uninstall_the_desktop_entry(tmp_path, monkeypatch, capsys):
    data = tmp_path / "xdg data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    launcher = tmp_path / "my apps" / "shoebox-app"
    monkeypatch.setattr(entry, "_launcher", lambda: str(launcher))

    assert entry.main(["shoebox-app", "--install-desktop-entry"]) == 0
    said = capsys.readouterr().out
    installed = data / "applications" / "shoebox.desktop"
    assert f"Wrote {installed}" in said
    keys = _entry_keys(installed.read_text(encoding="utf-8"))
    assert keys["Exec"] == f'"{launcher}" %F'  # the copy that was installed, quoted for its space
    checked = _validate(installed)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for size in SIZES:
        icon = data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "shoebox.png"
        assert QImage(str(icon)).width() == size
        assert f"Copied {icon}" in said
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / "shoebox.svg").exists()

    assert entry.main(["shoebox-app", "--uninstall-desktop-entry"]) == 0
    said = capsys.readouterr().out
    assert f"Removed {installed}" in said
    assert not installed.exists()
    assert not list((data / "icons").rglob("shoebox.*"))
    assert entry.main(["shoebox-app", "--uninstall-desktop-entry"]) == 0
    assert capsys.readouterr().out.startswith("Nothing to remove")


def test_a_relative_xdg_data_home_is_ignored(tmp_path):
    assert entry.data_home({"XDG_DATA_HOME": "relative/share"}) == Path.home() / ".local" / "share"
    assert entry.data_home({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path


# -- the resources inside an installed wheel ---------------------------------------------------------


@pytest.mark.slow
def test_an_installed_wheel_finds_its_resources_without_the_source_tree(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("engine", "desktop_app", "resources"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w", str(tmp_path)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("shoebox-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    # Every module of the tree is in the wheel (the package list in pyproject.toml is complete).
    modules = {p.relative_to(ROOT).as_posix() for d in ("engine", "desktop_app") for p in (ROOT / d).rglob("*.py")}
    assert modules - names == set()
    assert {"engine/resources/shoebox.desktop", "engine/resources/autotags.txt"} <= names
    assert not [n for n in names if n.endswith(".safetensors")]

    script = (
        "import engine, engine.autotag, engine.calibration, engine.bundled\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from desktop_app.main_window import app_icon\n"
        "print(engine.__file__)\n"
        "print(engine.bundled.RESOURCES)\n"
        "print(engine.autotag.DEFAULT_VOCABULARY.is_file(), engine.calibration.SHIPPED_FILE.is_file(),"
        " engine.calibration.PROBES_FILE.is_file())\n"
        "print(sorted(s.width() for s in app_icon().availableSizes()))\n"
    )
    # No source tree on the path: only the unpacked wheel (and the dependencies this interpreter has).
    env = _env(tmp_path, PYTHONPATH=str(tmp_path / "site"))
    ran = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    engine_file, resources, found, sizes = ran.stdout.splitlines()
    assert Path(engine_file).is_relative_to(tmp_path / "site")
    assert Path(resources) == tmp_path / "site" / "engine" / "resources"
    assert found == "True True True"
    assert sizes == str(sorted(SIZES))
    shown = subprocess.run(
        [sys.executable, "-m", "desktop_app", "--version"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert shown.stdout == f"Shoebox {version()}\n", shown.stderr


# -- one window per library -----------------------------------------------------------------------------


@pytest.fixture
def name(tmp_path):
    """A server name of this test's own (the tests must not reach a Shoebox the person has open)."""
    return server_name(tmp_path / "library")


SECOND = """
import json, sys
from desktop_app import single_instance
single_instance.ANSWER_TIMEOUT_MS = int(sys.argv[3])
try:
    print(json.dumps(getattr(single_instance.SingleInstance(sys.argv[1]), sys.argv[2])(sys.argv[4:])))
except single_instance.InstanceError as exc:
    print(json.dumps(str(exc)))
"""


def _second(qtbot, tmp_path, name: str, paths: list[str], *, call: str = "claim", answer_ms: int = 5000):
    """What a second start does, in a process of its own while this one answers: the JSON of what the call returned."""
    process = subprocess.Popen(
        [sys.executable, "-c", SECOND, name, call, str(answer_ms), *paths],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    qtbot.waitUntil(lambda: process.poll() is not None, timeout=60_000)
    out, _err = process.communicate()
    assert process.returncode == 0
    return json.loads(out)


def test_the_server_name_depends_on_the_library(tmp_path, monkeypatch):
    assert server_name(tmp_path / "a") != server_name(tmp_path / "b")
    assert server_name(tmp_path / "a") == server_name(tmp_path / "a")
    assert len(os.path.join(QDir.tempPath(), server_name(tmp_path))) < 100  # a Unix socket path's limit is 108
    monkeypatch.setenv("SHOEBOX_HOME", str(tmp_path / "lib"))
    assert library_home() == (tmp_path / "lib").resolve()
    assert library_home("~/x") == (Path.home() / "x").resolve()


def test_a_second_start_hands_its_paths_to_the_first(qtbot, name, tmp_path):
    first = SingleInstance(name)
    assert first.claim([]) is True
    try:
        paths = [str(tmp_path / "photos"), str(tmp_path / "notes with spaces ü.txt")]
        with qtbot.waitSignal(first.received, timeout=60_000) as received:
            result = _second(qtbot, tmp_path, name, paths)
        assert result is False  # the second does not become a window
        assert received.args == [paths]
    finally:
        first.close()


def test_a_stale_socket_from_a_crash_is_replaced(qtbot, name, tmp_path):
    path = os.path.join(QDir.tempPath(), name)
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(path)  # a socket file nobody listens on any more: what a killed process leaves
    crashed.close()
    assert os.path.exists(path)
    revived = SingleInstance(name)
    try:
        assert revived.claim(["a"]) is True
        with qtbot.waitSignal(revived.received, timeout=60_000) as received:
            result = _second(qtbot, tmp_path, name, ["b"], call="hand_over")
        assert result is True and received.args == [["b"]]
    finally:
        revived.close()


def test_a_window_that_does_not_answer_is_not_replaced(qtbot, name, tmp_path):
    path = os.path.join(QDir.tempPath(), name)
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(path)
    hung.listen(1)  # accepts connections into its queue but never answers
    try:
        said = _second(qtbot, tmp_path, name, [], answer_ms=300)
        assert "already open for this library but did not answer" in said
        assert os.path.exists(path)  # its socket was left alone
    finally:
        hung.close()
        os.unlink(path)


def test_nothing_but_a_list_of_paths_is_taken(qtbot, name):
    first = SingleInstance(name)
    assert first.claim([]) is True
    try:
        with qtbot.assertNotEmitted(first.received, wait=300):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(os.path.join(QDir.tempPath(), name))
            client.sendall(b'{"paths": [1, 2]}\n')
        client.close()
    finally:
        first.close()


@pytest.mark.qt_log_ignore("This plugin does not support raise")
def test_the_window_comes_to_the_front_and_indexes_what_it_is_handed(qtbot, library, name, tmp_path):
    note = make_text(tmp_path / "handed" / "boiler.txt", "The boiler service is due in October.")
    window = MainWindow(library=library)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.library_ready, timeout=10_000):
        window.show()
    window.showMinimized()
    assert window.isMinimized()
    first = SingleInstance(name)
    assert first.claim([]) is True
    entry.accept_handovers(first, window)
    try:
        with (
            qtbot.waitSignal(window.drop_indexer.paths_dropped, timeout=60_000) as dropped,
            qtbot.waitSignal(window.controller.index_finished, timeout=60_000) as finished,
        ):
            result = _second(qtbot, tmp_path, name, [str(note.parent)])
        assert result is False
        assert dropped.args == [[str(note.parent)]]  # handled as a drop of the folder would be
        assert not window.isMinimized()
        assert finished.args[0].added == 1
        assert library.store.get_file(str(note)) is not None
    finally:
        first.close()
        window.close()


class _OpeningWindow(QObject):
    """What take_paths uses of a MainWindow whose library is still opening."""

    library_ready = Signal()

    class _Drops(QObject):
        paths_dropped = Signal(list)

    def __init__(self):
        super().__init__()
        self.drop_indexer = self._Drops()
        self.controller = types.SimpleNamespace(is_open=False, indexed=[])
        self.controller.index = self.controller.indexed.append


def test_paths_given_at_start_wait_for_the_library(qtbot, tmp_path):
    note = make_text(tmp_path / "given" / "garden.txt", "The tomatoes need water.")
    paths = entry.existing_paths([str(note), str(tmp_path / "nowhere"), note.parent.as_uri(), str(note)])
    assert paths == [str(note), str(note.parent)]  # absolute, what exists, once each
    window = _OpeningWindow()
    entry.take_paths(window, paths)
    assert window.controller.indexed == []  # not before the library is open
    window.controller.is_open = True
    with qtbot.waitSignal(window.drop_indexer.paths_dropped) as dropped:
        window.library_ready.emit()
    assert dropped.args == [paths] and window.controller.indexed == [paths]
    window.library_ready.emit()  # once only
    assert window.controller.indexed == [paths]


def test_shoebox_app_started_twice_hands_over_and_exits(qtbot, tmp_path):
    home = tmp_path / "library"
    folder = tmp_path / "to index"
    folder.mkdir()
    first = SingleInstance(server_name(library_home(home)))
    assert first.claim([]) is True
    try:
        with qtbot.waitSignal(first.received, timeout=60_000) as received:
            started = time.monotonic()
            second = subprocess.Popen(
                [sys.executable, "-m", "desktop_app", "--home", str(home), "to index", "missing.jpg"],
                env=_env(tmp_path),
                cwd=tmp_path,
                stderr=subprocess.PIPE,
                text=True,
            )
        _out, err = second.communicate(timeout=60)
        took = time.monotonic() - started
        assert second.returncode == 0, err
        assert received.args == [[str(folder)]]  # made absolute; what does not exist is left out
        assert "missing.jpg: no such file or folder; left out" in err
        assert took < 30
    finally:
        first.close()


@pytest.mark.qt_log_ignore("This plugin does not support raise")
def test_bring_to_front_restores_a_minimised_window(qtbot):
    from PySide6.QtWidgets import QWidget

    widget = QWidget()
    qtbot.addWidget(widget)
    widget.showMinimized()
    bring_to_front(widget)
    assert not widget.windowState() & Qt.WindowState.WindowMinimized
    assert widget.isVisible()
