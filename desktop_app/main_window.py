"""The main window (a first version: search field, results, library status)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from engine.errors import ShoeboxError
from engine.library import Library
from engine.settings import Settings, load_settings

from .tasks import run_task

SEARCH_DELAY_MS = 250


class MainWindow(QMainWindow):
    """Shows at once; the library opens and searches run on worker threads."""

    library_ready = Signal()
    results_shown = Signal(int)

    def __init__(self, settings: Settings | None = None, library: Library | None = None):
        super().__init__()
        self.setWindowTitle("Shoebox")
        self.resize(900, 640)
        self.settings = settings
        self.library = library
        self._generation = 0

        self.search_field = QLineEdit(placeholderText="Search your photos, documents and recordings")
        self.search_field.setClearButtonEnabled(True)
        self.results = QListWidget()
        self.results.setWordWrap(True)
        self.summary = QLabel("Opening the library…")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)

        layout = QVBoxLayout()
        layout.addWidget(self.search_field)
        layout.addWidget(self.summary)
        layout.addWidget(self.results, 1)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Starting…")

        self._debounce = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._debounce.timeout.connect(self.run_search)
        self.search_field.textChanged.connect(lambda _: self._debounce.start())
        self.search_field.returnPressed.connect(self.run_search)
        for keys in ("Ctrl+K", "Ctrl+F"):
            QShortcut(QKeySequence(keys), self, activated=self.search_field.setFocus)

        if self.library is None:
            run_task(self._open_library, self._library_opened, self._show_error)
        else:
            QTimer.singleShot(0, lambda: self._library_opened(self.library))

    def _open_library(self) -> Library:
        return Library(self.settings or load_settings())

    def _library_opened(self, library: Library) -> None:
        self.library = library
        stats = library.store.stats()
        files = stats["files"]
        self.statusBar().showMessage(
            f"{files['image']} photos · {files['document']} documents · {files['audio']} recordings — {stats['library']}"
        )
        self.summary.setText("Type to search." if stats["items"] else "The library is empty: index a folder with `shoebox index`.")
        self.library_ready.emit()

    def run_search(self) -> None:
        text = self.search_field.text().strip()
        if self.library is None or not text:
            return
        self._generation += 1
        generation = self._generation
        library = self.library
        run_task(lambda: library.search(text, k=30), lambda r: self._show_results(generation, r), self._show_error)

    def _show_results(self, generation: int, response) -> None:
        if generation != self._generation:
            return  # a newer query is on its way
        self.results.clear()
        for result in response.results:
            where = f"  p.{result.locator['page']}" if "page" in result.locator else ""
            text = f"{result.path}{where}  ({result.kind})"
            if result.snippet:
                text += f"\n{result.snippet}"
            item = QListWidgetItem(text)
            item.setToolTip(f"score {result.score:.4f}")
            self.results.addItem(item)
        self.summary.setText(f"{len(response.results)} results in {response.took_ms:.0f} ms")
        for warning in response.warnings:
            self.statusBar().showMessage(warning)
        self.results_shown.emit(len(response.results))

    def _show_error(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, ShoeboxError) else f"Something went wrong: {exc}"
        self.summary.setText(message)
        if not isinstance(exc, ShoeboxError):
            QMessageBox.warning(self, "Shoebox", message)

    def closeEvent(self, event) -> None:
        from PySide6.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(5000)
        if self.library is not None:
            self.library.close()
        super().closeEvent(event)
