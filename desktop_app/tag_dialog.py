"""The box that asks for a tag: it starts empty, suggests the library's tags as you type, and
cannot be confirmed while empty (so a stray Enter never tags anything)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class TagDialog(QDialog):
    """Asks for one tag; ``tag_chosen(str)`` when the person confirms a non-empty one."""

    tag_chosen = Signal(str)

    def __init__(self, prompt: str, suggestions: Sequence[str] = (), parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Add tag")
        self.label = QLabel(prompt)
        self.field = QLineEdit()
        hint = "A tag, such as holiday or receipts"
        self.field.setPlaceholderText(hint)
        self.field.setMinimumWidth(self.field.fontMetrics().horizontalAdvance(hint) + 32)  # the hint is read whole
        self.field.setAccessibleName("Tag")
        completer = QCompleter(list(suggestions), self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.field.setCompleter(completer)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button: QPushButton = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Add tag")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.field)
        layout.addWidget(self.buttons)
        self.field.textChanged.connect(self._text_changed)
        self._text_changed("")

    def tag(self) -> str:
        return self.field.text().strip()

    def _text_changed(self, _text: str) -> None:
        self.ok_button.setEnabled(bool(self.tag()))

    def accept(self) -> None:
        tag = self.tag()
        if not tag:
            return  # Enter on an empty box: nothing to add, and the box stays open
        super().accept()
        self.tag_chosen.emit(tag)
