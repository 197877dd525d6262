"""File ▸ Library storage…: keep the library on this computer, or on a PostgreSQL server.

A library kept on a PostgreSQL server (with pgvector) is one library that several
computers search and add to; the thumbnails and the models stay on each computer.
The page tries an address before it is chosen (**Test connection**, which changes
nothing on the server), and **Save** opens the library there before anything is
written, so an address that does not work leaves the app as it was.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.settings import Settings

from .controller import (
    AppController,
    describe_error,
    library_location,
    overriding_environment,
    store_address,
    store_address_problem,
    store_location,
)
from .dialogs import InlineMessage, _subtle, fitted_size, scrolling
from .indexing import when_alive
from .tasks import run_task

ADDRESS_EXAMPLE = "postgresql://me@nas.local/shoebox"
INDEX_KINDS = [
    ("hnsw", "HNSW: quick searches, slower to build"),
    ("ivfflat", "IVFFlat: quick to build, less exact"),
]
KIND_WORDS = {"image": ("photo", "photos"), "document": ("document", "documents"), "audio": ("recording", "recordings")}

ENVIRONMENT_NOTE = (
    "Where the library is kept is set where Shoebox was started from (in its environment), and that "
    "takes precedence over this page: the library is at {location}. To choose here, start Shoebox "
    "without that setting."
)
MIGRATE_HELP = (
    "Choosing a server that holds no library starts an empty one there; the library on this computer "
    "stays as it is. To move it to the server with everything it holds (files found, tags, vectors), "
    "run <code>shoebox store migrate</code> in a terminal first, then choose the server here."
)


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def describe_library(stats: dict | None) -> str:
    """What a probe found, in a sentence: "It holds a Shoebox library of 12 files (10 photos, 2 documents)."."""
    if stats is None:
        return "It holds no Shoebox library yet: saving starts an empty one there."
    files = stats.get("files") or {}
    total = sum(int(n) for n in files.values())
    parts = [_count(int(files[k]), *KIND_WORDS.get(k, (k, k))) for k in files if files[k]]
    detail = f" ({', '.join(parts)})" if parts and len(parts) > 1 else ""
    return f"It holds a Shoebox library of {_count(total, 'file', 'files')}{detail}."


def _spin(low: int, high: int, value: int, tip: str, *, automatic: bool = False) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    if automatic:
        box.setSpecialValueText("Chosen for you")  # shown for the lowest value, 0
    return box


class StoreSettingsDialog(QDialog):
    """Where the library is kept: **On this computer** (the SQLite file) or **On a PostgreSQL server**.

    ``StoreSettingsDialog(settings, controller, parent=None)``: ``settings`` are the
    library's :class:`~engine.settings.Settings`, ``controller`` the window's
    :class:`~desktop_app.controller.AppController`, which tries addresses and moves the
    library.  A saved password is never shown: the address field shows the address
    without it, and an empty password field keeps it.  When the environment Shoebox
    was started from says where the library is, the page says so and nothing can be
    changed.

    Signals: ``tested(bool, str)`` when a test ends (whether the server can be used,
    what was said); ``store_changed(object)`` with the saved Settings once the app uses
    the library where they say.

    Methods: ``test_connection()``, ``cancel_test()``, ``save()``, ``location()`` (the
    libpq address to save), ``is_busy()``, ``message()`` (what the page says now).
    """

    tested = Signal(bool, str)
    store_changed = Signal(object)

    def __init__(self, settings: Settings, controller: AppController, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.controller = controller
        self.setWindowTitle("Library storage")
        self._busy = False
        self._test = 0  # the test under way (0: none); a cancelled test's answer is dropped
        self.overridden = bool(overriding_environment(["store"]))
        address, self._password_saved = store_address(settings)

        heading = QLabel("Where this library is kept")
        font = heading.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        heading.setFont(font)
        explanation = QLabel(
            "The library is what Shoebox knows about your files: where they are, what they show and say, "
            "their tags. Keep it on this computer, or on a PostgreSQL server so that several computers "
            "search and add to one library. Thumbnails and models stay on each computer either way."
        )
        explanation.setWordWrap(True)
        self.environment_note = InlineMessage()
        if self.overridden:
            self.environment_note.show_message(
                ENVIRONMENT_NOTE.format(location=library_location(settings)), error=False
            )

        self.local_choice = QRadioButton("On this computer")
        self.local_path = _subtle(QLabel(f"In the file {settings.db_path}"))
        self.local_path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.server_choice = QRadioButton("On a PostgreSQL server (shared with other computers)")
        self.choices = QButtonGroup(self)
        self.choices.addButton(self.local_choice)
        self.choices.addButton(self.server_choice)

        # The server's address and password.
        self.address = QLineEdit(address)
        self.address.setPlaceholderText(f"{ADDRESS_EXAMPLE}   or   host=nas.local dbname=shoebox")
        self.address.setClearButtonEnabled(True)
        self.address.setMinimumWidth(380)
        self.address_error = InlineMessage()
        address_hint = _subtle(
            QLabel(
                "A PostgreSQL address: a URI such as postgresql://me@nas.local/shoebox, or words such as "
                "host=/run/postgresql dbname=shoebox. The database needs the pgvector extension."
            )
        )
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText(
            "Saved: leave empty to keep it" if self._password_saved else "Only if the server asks for one"
        )
        self.password.setToolTip(
            "Kept in this library's settings file on this computer, added to the address when Shoebox connects"
        )
        address_box = QWidget()
        address_column = QVBoxLayout(address_box)
        address_column.setContentsMargins(0, 0, 0, 0)
        address_column.setSpacing(2)
        address_column.addWidget(self.address)
        address_column.addWidget(self.address_error)
        address_column.addWidget(address_hint)

        # Advanced: the vector index of a new library, and this computer's search parameters.
        self.index_kind = QComboBox()
        for value, label in INDEX_KINDS:
            self.index_kind.addItem(label, value)
        self.index_kind.setCurrentIndex(max(0, self.index_kind.findData(settings.pg_index)))
        self.pg_m = _spin(
            2, 100, settings.pg_m, "Links from each vector to its neighbours; more finds more, uses more room"
        )
        self.pg_ef_construction = _spin(
            4,
            1000,
            settings.pg_ef_construction,
            "Candidates looked at while the index is built; more builds a better one",
        )
        self.pg_lists = _spin(
            0,
            100_000,
            settings.pg_lists,
            "Clusters the vectors are grouped in; chosen from their number when 0",
            automatic=True,
        )
        self.pg_ef_search = _spin(
            1, 1000, settings.pg_ef_search, "Candidates a search looks at (HNSW); more finds more, a little slower"
        )
        self.pg_probes = _spin(
            0,
            10_000,
            settings.pg_probes,
            "Clusters a search looks in (IVFFlat); the square root of the lists when 0",
            automatic=True,
        )
        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setAutoRaise(True)
        self.advanced = QWidget()
        advanced_form = QFormLayout(self.advanced)
        advanced_form.setContentsMargins(18, 0, 0, 0)
        # Numbers and a short list: fields as wide as a long address would only be harder to read.
        advanced_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        advanced_form.addRow(
            _subtle(QLabel("The vector index of a new library (a library already there keeps its own):"))
        )
        advanced_form.addRow("Index:", self.index_kind)
        advanced_form.addRow("Links per vector (m):", self.pg_m)
        advanced_form.addRow("Build candidates (ef_construction):", self.pg_ef_construction)
        advanced_form.addRow("Lists:", self.pg_lists)
        advanced_form.addRow(_subtle(QLabel("How this computer searches the library:")))
        advanced_form.addRow("Search candidates (ef_search):", self.pg_ef_search)
        advanced_form.addRow("Lists searched (probes):", self.pg_probes)
        self._advanced_form = advanced_form
        self.advanced.hide()

        self.server_box = QWidget()
        server_form = QFormLayout(self.server_box)
        server_form.setContentsMargins(24, 0, 0, 0)
        server_form.addRow("Address:", address_box)
        server_form.addRow("Password:", self.password)
        server_form.addRow(self.advanced_button)
        server_form.addRow(self.advanced)

        # Testing an address.
        self.test_button = QPushButton("Test connection")
        self.test_button.setToolTip("Connect to the server and see what it holds; nothing there is changed")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 0)  # busy: how long a server takes to answer is not known
        self.progress_bar.setTextVisible(False)
        self.progress_label = _subtle(QLabel())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop waiting for the server")
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.progress_bar, 1)
        test_row.addWidget(self.cancel_button)
        test_row.addStretch(0)
        self.outcome = InlineMessage()

        where_box = QGroupBox("Keep the library")
        where = QVBoxLayout(where_box)
        where.addWidget(self.local_choice)
        local_row = QHBoxLayout()
        local_row.setContentsMargins(24, 0, 0, 6)
        local_row.addWidget(self.local_path)
        where.addLayout(local_row)
        where.addWidget(self.server_choice)
        where.addWidget(self.server_box)
        where.addLayout(test_row)
        where.addWidget(self.progress_label)
        where.addWidget(self.outcome)

        self.migrate_help = _subtle(QLabel(MIGRATE_HELP))
        self.migrate_help.setTextFormat(Qt.TextFormat.RichText)
        self.migrate_help.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setToolTip("Open the library where chosen and use it from now on")
        self.close_button = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.addWidget(heading)
        content_layout.addWidget(explanation)
        content_layout.addWidget(self.environment_note)
        content_layout.addWidget(where_box)
        content_layout.addWidget(self.migrate_help)
        content_layout.addStretch(1)
        self.content = content
        self.scroll_area = scrolling(content)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll_area, 1)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(600)

        (self.server_choice if address else self.local_choice).setChecked(True)
        self.choices.buttonToggled.connect(lambda *_: self._update())
        self.index_kind.currentIndexChanged.connect(lambda *_: self._update())
        self.advanced_button.toggled.connect(self._show_advanced)
        self.address.textChanged.connect(lambda _text: self._address_edited())
        self.password.textChanged.connect(lambda _text: self.outcome.clear())
        self.test_button.clicked.connect(self.test_connection)
        self.cancel_button.clicked.connect(self.cancel_test)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self._update()
        self.resize(fitted_size(self, content, self.buttons.sizeHint().height()))

    # -- state -----------------------------------------------------------------------------

    def is_busy(self) -> bool:
        """Whether a test or a move to another store is under way."""
        return self._busy

    def message(self) -> str:
        """What the page says now about a test or a save ("" when nothing)."""
        return self.outcome.message()

    def server_chosen(self) -> bool:
        return self.server_choice.isChecked()

    def _update(self) -> None:
        server = self.server_chosen()
        editable = not self.overridden and not self._busy
        self.local_choice.setEnabled(editable)
        self.server_choice.setEnabled(editable)
        for widget in (self.address, self.password, self.advanced):
            widget.setEnabled(editable and server)
        self.advanced_button.setEnabled(server and not self._busy)
        hnsw = self.index_kind.currentData() == "hnsw"
        for field, shown in (
            (self.pg_m, hnsw),
            (self.pg_ef_construction, hnsw),
            (self.pg_lists, not hnsw),
            (self.pg_ef_search, hnsw),
            (self.pg_probes, not hnsw),
        ):
            self._advanced_form.setRowVisible(field, shown)
        self.test_button.setEnabled(server and not self._busy)
        self.progress_bar.setVisible(self._busy)
        self.cancel_button.setVisible(self._busy and self._test != 0)
        self.progress_label.setVisible(self._busy)
        self.save_button.setEnabled(not self.overridden and not self._busy)
        # While the library moves the page stays, to say how it went; a test can be cancelled.
        self.close_button.setEnabled(not self._busy or self._test != 0)

    def _show_advanced(self, shown: bool) -> None:
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.advanced.setVisible(shown)
        self._fit()

    def _fit(self) -> None:
        """Grow to show what the page holds now (the advanced fields, a message), as far as the screen allows."""
        if (layout := self.content.layout()) is not None:
            layout.activate()
        wanted = fitted_size(self, self.content, self.buttons.sizeHint().height())
        if wanted.height() > self.height() or wanted.width() > self.width():
            self.resize(max(self.width(), wanted.width()), max(self.height(), wanted.height()))

    def _address_edited(self) -> None:
        self.address_error.clear()
        self.outcome.clear()

    def _set_busy(self, busy: bool, text: str = "") -> None:
        self._busy = busy
        self.progress_label.setText(text)
        self._update()

    def _say(self, text: str, *, error: bool) -> None:
        self.outcome.show_message(text, error=error)
        self._fit()

    # -- values ----------------------------------------------------------------------------

    def location(self) -> str:
        """The libpq address to save for the server as the fields say (with the password merged in); ""
        for this computer."""
        if not self.server_chosen():
            return ""
        return store_location(self.address.text(), self.password.text(), self.settings)

    def changes(self) -> dict[str, Any]:
        """The settings to save for what the page says now (names as in :class:`Settings`)."""
        values: dict[str, Any] = {"store": self.location()}
        if self.server_chosen():
            values.update(
                pg_index=self.index_kind.currentData(),
                pg_m=self.pg_m.value(),
                pg_ef_construction=self.pg_ef_construction.value(),
                pg_lists=self.pg_lists.value(),
                pg_ef_search=self.pg_ef_search.value(),
                pg_probes=self.pg_probes.value(),
            )
        return {key: value for key, value in values.items() if getattr(self.settings, key) != value}

    def _check_address(self) -> str:
        """The location to use, or "" after showing beside the address why it cannot be."""
        location = self.location()
        problem = store_address_problem(location)
        if problem:
            self.address_error.show_message(problem)
            self._fit()
            return ""
        return location

    # -- testing ---------------------------------------------------------------------------

    def test_connection(self) -> None:
        """Connect to the server the fields name, off the GUI thread, and say what it holds (``tested``)."""
        if self._busy or not self.server_chosen():
            return
        self.outcome.clear()
        location = self._check_address()
        if not location:
            return
        trial = replace(self.settings, **{**self.changes(), "store": location})
        self._test = number = self._test + 1
        self._set_busy(
            True, f"Connecting to {library_location(trial)}… (a server that does not answer takes 10 seconds)"
        )

        def done(probe: dict) -> None:
            if number != self._test:
                return  # cancelled
            self._test = 0
            self._set_busy(False)
            text = f"Connected to PostgreSQL {probe['server']} at {probe['location']}. {describe_library(probe['library'])}"
            usable = bool(probe["pgvector"]) or probe["library"] is not None
            if not usable:
                text += (
                    " But the server lacks the pgvector extension Shoebox needs: its administrator can install it "
                    "(the package is usually called postgresql-pgvector)."
                )
            self._say(text, error=not usable)
            self.tested.emit(usable, text)

        def failed(exc: BaseException) -> None:
            if number != self._test:
                return
            self._test = 0
            self._set_busy(False)
            text = describe_error(exc)
            self._say(text, error=True)
            self.tested.emit(False, text)

        run_task(lambda: AppController.probe_store(trial), when_alive(self, done), when_alive(self, failed))

    def cancel_test(self) -> None:
        """Stop waiting for the server (its answer, when it comes, is dropped)."""
        if self._test:
            self._test = 0
            self._set_busy(False)
            self._say("Stopped waiting for the server.", error=False)

    # -- saving ----------------------------------------------------------------------------

    def save(self) -> bool:
        """Save where the library is kept and move the app's library there (in the background).

        False when a field needs fixing or the page cannot save now; True when the move
        started (``store_changed`` follows once it is done, or the page says why not)
        or there was nothing to change (the page then closes).
        """
        if self._busy or self.overridden:
            return False
        self.outcome.clear()
        if self.server_chosen() and not self._check_address():
            return False
        changes = self.changes()
        if not changes:
            self.accept()
            return True
        where = library_location(replace(self.settings, **changes))
        self._set_busy(True, f"Opening the library at {where}…")

        def done(saved: Settings) -> None:
            self._set_busy(False)
            self.settings = saved
            self.store_changed.emit(saved)
            self.accept()

        def failed(message: str) -> None:
            self._set_busy(False)
            self._say(f"The library stays where it was. {message}", error=True)

        self.controller.switch_store(changes, when_alive(self, done), when_alive(self, failed))
        return True

    # -- closing ---------------------------------------------------------------------------

    def reject(self) -> None:
        if self._test:  # Escape while testing: stop waiting first
            self.cancel_test()
            return
        if self._busy:  # the library is moving: it finishes by itself, and this page says how it went
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._busy:
            self.cancel_test()
            if self._busy:
                event.ignore()
                return
        super().closeEvent(event)
