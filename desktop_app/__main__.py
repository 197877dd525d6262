"""``shoebox-app``: open the Shoebox window.

    shoebox-app [--home FOLDER] [PATH ...]
    shoebox-app --install-desktop-entry | --uninstall-desktop-entry | --version

PATHs (files and folders) are indexed as if dropped on the window.  One window per
library: while one is open, ``shoebox-app PATH`` brings it to the front, hands it the
paths and exits (:mod:`desktop_app.single_instance`).

The window appears before the library and the models are loaded; nothing
heavy (torch, the CLIP and Whisper code, numba) is imported here
(``benchmarks/startup.py`` measures it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine.bundled import resource_path, version

DESCRIPTION = "Find things in your photos, documents and recordings."
DESKTOP_FILE = "shoebox.desktop"
ICON_NAME = "shoebox"


class _VersionAction(argparse.Action):
    """argparse's "version" action, with the version looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any) -> None:
        print(f"Shoebox {version()}")
        parser.exit()


def _parser(*, with_paths: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoebox-app", description=DESCRIPTION)
    parser.add_argument("--home", help="the library folder (default: SHOEBOX_HOME, or your data folder)")
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    parser.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add Shoebox to your applications menu (a .desktop file and icons in XDG_DATA_HOME) and exit",
    )
    parser.add_argument(
        "--uninstall-desktop-entry", action="store_true", help="remove what --install-desktop-entry added and exit"
    )
    if with_paths:
        parser.add_argument("paths", nargs="*", metavar="PATH", help="files and folders to index")
    return parser


def _application(argv: list[str]) -> tuple[Any, argparse.Namespace]:
    """The QApplication, and the arguments left once Qt took its own (-platform, -style ...)."""
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv)
    # Qt removes its own options from the arguments of the application it makes.
    arguments = argv[1:] if existing is not None else app.arguments()[1:]
    app.setApplicationName("Shoebox")
    app.setApplicationDisplayName("Shoebox")
    app.setOrganizationName("Shoebox")
    # Wayland's app id and the dock's grouping: the name of the installed .desktop file.
    app.setDesktopFileName("shoebox")
    args = _parser(with_paths=True).parse_args(arguments)
    if args.home:
        # Read with the other settings when the library opens, so a problem shows in the window.
        os.environ["SHOEBOX_HOME"] = os.path.abspath(os.path.expanduser(args.home))
    return app, args


def existing_paths(arguments: list[str]) -> list[str]:
    """Absolute paths of the files and folders named (``file://`` URLs too); says which are left out."""
    paths = []
    for argument in arguments:
        path = argument
        if argument.startswith("file://"):
            from PySide6.QtCore import QUrl

            path = QUrl(argument).toLocalFile()
        path = os.path.abspath(os.path.expanduser(path))
        if os.path.exists(path):
            paths.append(path)
        else:
            print(f"shoebox-app: {argument}: no such file or folder; left out", file=sys.stderr)
    return list(dict.fromkeys(paths))


def take_paths(window: Any, paths: list[str]) -> None:
    """Index ``paths`` the way a drop of them on ``window`` does, once the library is open."""
    if not paths:
        return
    if not window.controller.is_open:

        def when_open() -> None:
            window.library_ready.disconnect(when_open)
            take_paths(window, paths)

        window.library_ready.connect(when_open)
        return
    window.drop_indexer.paths_dropped.emit(paths)
    window.controller.index(paths)


def _build_window(app: Any, paths: list[str]) -> Any:
    from .dialogs import thumbnail_size
    from .main_window import MainWindow, app_icon

    app.setWindowIcon(app_icon())
    from PySide6.QtCore import QSettings

    window = MainWindow(app_settings=QSettings())
    window.results.set_thumbnail_size(thumbnail_size())  # the person's choice, kept in QSettings
    window.show()
    take_paths(window, paths)
    return window


def create_window(argv: list[str] | None = None) -> tuple[Any, Any]:
    """The QApplication and the shown MainWindow, as ``shoebox-app`` starts them (before the event loop)."""
    argv = list(sys.argv if argv is None else argv)
    app, args = _application(argv)
    return app, _build_window(app, existing_paths(args.paths))


def accept_handovers(guard: Any, window: Any) -> None:
    """Paths handed over by a later ``shoebox-app``: the window comes to the front and indexes them."""
    from .single_instance import bring_to_front

    def received(paths: list[str]) -> None:
        bring_to_front(window)
        take_paths(window, paths)

    guard.received.connect(received)


# -- the desktop entry ---------------------------------------------------------------------------


def data_home(env: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """``XDG_DATA_HOME`` when it is set to an absolute path (the specification ignores others), else ~/.local/share."""
    env = os.environ if env is None else env
    value = env.get("XDG_DATA_HOME", "")
    return Path(value) if value and os.path.isabs(value) else Path.home() / ".local" / "share"


def _icon_files() -> list[tuple[Path, str]]:
    """(bundled icon, where it goes under share/icons/hicolor) for every size, largest last."""
    icons = resource_path("icons")
    pairs = []
    for png in icons.glob("shoebox-*.png"):
        size = png.stem.rpartition("-")[2]
        if size.isdigit():
            pairs.append((int(size), png, f"{size}x{size}/apps/{ICON_NAME}.png"))
    files = [(png, target) for _size, png, target in sorted(pairs)]
    svg = icons / "shoebox.svg"
    if svg.exists():
        files.append((svg, f"scalable/apps/{ICON_NAME}.svg"))
    return files


def _exec_value(program: str) -> str:
    """``program`` quoted for an Exec key (desktop entry specification, "The Exec key")."""
    if all(c.isalnum() or c in "/._-+" for c in program):
        return program
    quoted = "".join("\\" + c if c in '"`$\\' else c for c in program)
    # The value is also a string value of the file, whose own escape character is the backslash.
    return '"' + quoted.replace("\\", "\\\\") + '"'


def _launcher() -> str | None:
    """The absolute path of this installation's ``shoebox-app``, or None when it has none (a source checkout)."""
    here = Path(sys.executable).parent / ("shoebox-app.exe" if os.name == "nt" else "shoebox-app")
    if here.exists():
        return str(here)
    found = shutil.which("shoebox-app")
    return os.path.abspath(found) if found else None


def _update_desktop_database(applications: Path) -> str | None:
    tool = shutil.which("update-desktop-database")
    if tool is None:
        return None
    done = subprocess.run([tool, str(applications)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"update-desktop-database {applications} failed: {(done.stderr or done.stdout).strip()}"
    return f"Updated the file-type list in {applications}"


def install_desktop_entry(data_dir: Path | None = None, launcher: str | None = None) -> list[str]:
    """Put Shoebox in the person's applications menu: the .desktop file and the icons under ``data_dir``
    (default :func:`data_home`).  Returns what was done, one line each.

    ``Exec`` names ``launcher`` (default: this installation's ``shoebox-app``), so the
    menu starts this copy even where the desktop's PATH lacks ~/.local/bin.
    """
    data_dir = data_home() if data_dir is None else data_dir
    launcher = _launcher() if launcher is None else launcher
    done = []
    entry = resource_path(DESKTOP_FILE).read_text(encoding="utf-8")
    if launcher:
        value = _exec_value(launcher)
        entry = entry.replace("\nExec=shoebox-app ", f"\nExec={value} ").replace(
            "\nTryExec=shoebox-app\n", f"\nTryExec={value}\n"
        )
    applications = data_dir / "applications"
    applications.mkdir(parents=True, exist_ok=True)
    target = applications / DESKTOP_FILE
    target.write_text(entry, encoding="utf-8")
    done.append(f"Wrote {target} (starts {launcher or 'shoebox-app from your PATH'})")
    hicolor = data_dir / "icons" / "hicolor"
    for source, relative in _icon_files():
        destination = hicolor / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        done.append(f"Copied {destination}")
    if hicolor.is_dir():
        os.utime(hicolor)  # icon caches look at the theme folder's time to notice new icons
    updated = _update_desktop_database(applications)
    if updated:
        done.append(updated)
    if not launcher:
        done.append("Note: shoebox-app is not on your PATH, so the menu entry cannot start it until it is.")
    return done


def uninstall_desktop_entry(data_dir: Path | None = None) -> list[str]:
    """Remove what :func:`install_desktop_entry` put under ``data_dir``; returns what was removed."""
    data_dir = data_home() if data_dir is None else data_dir
    applications = data_dir / "applications"
    targets = [applications / DESKTOP_FILE]
    targets += [data_dir / "icons" / "hicolor" / relative for _source, relative in _icon_files()]
    done = []
    for target in targets:
        if target.exists():
            target.unlink()
            done.append(f"Removed {target}")
    if not done:
        return [f"Nothing to remove: no Shoebox desktop entry or icons under {data_dir}"]
    updated = _update_desktop_database(applications) if applications.is_dir() else None
    if updated:
        done.append(updated)
    return done


# -- the entry point ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    # What needs no window is done before Qt starts (and works without a display).
    early, _rest = _parser(with_paths=False).parse_known_args(argv[1:])
    if early.install_desktop_entry or early.uninstall_desktop_entry:
        try:
            lines = install_desktop_entry() if early.install_desktop_entry else uninstall_desktop_entry()
        except OSError as exc:
            print(f"shoebox-app: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
            return 1
        print("\n".join(lines))
        return 0

    app, args = _application(argv)
    paths = existing_paths(args.paths)
    from .single_instance import InstanceError, SingleInstance, library_home, server_name

    guard = SingleInstance(server_name(library_home()))
    try:
        if not guard.claim(paths):
            return 0  # the open window has the paths and came to the front
    except InstanceError as exc:
        print(f"shoebox-app: {exc}", file=sys.stderr)
        return 1
    window = _build_window(app, paths)
    accept_handovers(guard, window)
    try:
        return app.exec()
    finally:
        guard.close()


if __name__ == "__main__":
    sys.exit(main())
