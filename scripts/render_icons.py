"""Render Shoebox's icon (``resources/icons/shoebox.svg``) to the PNGs beside it.

    .venv/bin/python -m scripts.render_icons          # writes resources/icons/shoebox-<size>.png
    .venv/bin/python -m scripts.render_icons --check  # exits 1 when a PNG differs from a fresh rendering

Qt's own SVG renderer draws them, the same one that draws the SVG where Qt loads it
directly, so the small sizes match what the window shows.  Run it after editing the SVG
and commit the PNGs with it: the installed desktop entry and the platforms that cannot
read SVG icons use the PNGs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ICONS = ROOT / "resources" / "icons"
SVG = ICONS / "shoebox.svg"
# The sizes freedesktop icon themes (hicolor) and docks ask for.
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def png_path(size: int, folder: Path = ICONS) -> Path:
    return folder / f"shoebox-{size}.png"


def render(svg: Path, size: int) -> bytes:
    """The icon drawn at ``size`` x ``size`` pixels on a transparent background, as PNG bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QImage, QImageWriter, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not an SVG image Qt can draw")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QImageWriter(buffer, QByteArray(b"png"))
    if not writer.write(image):
        raise SystemExit(f"cannot write a PNG: {writer.errorString()}")
    buffer.close()
    return bytes(data.data())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed PNGs instead of writing them")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    stale = []
    for size in SIZES:
        png = render(SVG, size)
        target = png_path(size)
        if args.check:
            if not target.exists() or target.read_bytes() != png:
                stale.append(target.name)
            continue
        target.write_bytes(png)
        print(f"wrote {target.relative_to(ROOT)} ({len(png):,} bytes)")
    if stale:
        print(f"out of date with {SVG.name}: {', '.join(stale)}; run python -m scripts.render_icons")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
