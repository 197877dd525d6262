"""``shoebox-app``: open the Shoebox window.

    shoebox-app [--home FOLDER]

The window appears before the library and the models are loaded; nothing
heavy (torch, the CLIP and Whisper code, numba) is imported here
(``benchmarks/startup.py`` measures it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def create_window(argv: list[str] | None = None) -> tuple[Any, Any]:
    """The QApplication and the shown MainWindow, as ``shoebox-app`` starts them (before the event loop)."""
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="shoebox-app", description="Find things in your photos, documents and recordings."
    )
    parser.add_argument("--home", help="the library folder (default: SHOEBOX_HOME, or your data folder)")
    args, qt_args = parser.parse_known_args(argv[1:])

    from PySide6.QtWidgets import QApplication

    app = QApplication([argv[0], *qt_args])
    app.setApplicationName("Shoebox")
    app.setApplicationDisplayName("Shoebox")
    app.setOrganizationName("Shoebox")
    app.setDesktopFileName("shoebox")

    from .dialogs import thumbnail_size
    from .main_window import MainWindow

    if args.home:
        # Read with the other settings when the library opens, so a problem shows in the window.
        os.environ["SHOEBOX_HOME"] = os.path.abspath(os.path.expanduser(args.home))
    window = MainWindow()
    window.offer_models_dialog = True  # missing models: explain the choice at once
    window.results.set_thumbnail_size(thumbnail_size())  # the person's choice, kept in QSettings
    window.show()
    return app, window


def main(argv: list[str] | None = None) -> int:
    app, _window = create_window(argv)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
