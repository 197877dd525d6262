"""A layout that places its widgets in a row and wraps them onto further rows when the row is full.

Buttons in a narrow pane (the preview's Open, Show in folder, More like this,
Add tag) then keep their whole text: each gets its size hint, and what does not
fit goes to the next row instead of being squeezed until its text is cut.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QMargins, QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QLayout, QLayoutItem, QWidget


class FlowLayout(QLayout):
    """Left to right, wrapping; ``height_for_width`` makes the parent as tall as the rows need."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 4, *, right_from: int | None = None):
        """``right_from``: the items from this index on keep to the right of their row (a header's
        controls beside its title), wrapping under it together when the row is too narrow."""
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self._right_from = right_from
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> Any:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> Any:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def spacing(self) -> int:
        return self._spacing

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), apply=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, apply=True)

    def sizeHint(self) -> QSize:
        # One row when there is room for it.
        margins = self.contentsMargins()
        visible = self._visible()
        width = sum(item.sizeHint().width() for item in visible) + self._spacing * max(0, len(visible) - 1)
        height = max((item.sizeHint().height() for item in visible), default=0)
        return QSize(width, height) + QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    def minimumSize(self) -> QSize:
        # As narrow as the widest single item at its narrowest (a label wrapped, a slider shortened):
        # the rest wraps onto more rows.
        margins = self.contentsMargins()
        size = QSize()
        for item in self._visible():
            size = size.expandedTo(item.minimumSize())
        return size + QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    def _visible(self) -> list[QLayoutItem]:
        return [item for item in self._items if not item.isEmpty()]

    def _arrange(self, rect: QRect, *, apply: bool) -> int:
        margins: QMargins = self.contentsMargins()
        area = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        # Rows of (item, size, index); an item wider than the row (a long label) is given the row's
        # width and the height it needs to wrap there.
        rows: list[list[tuple[QLayoutItem, QSize, int]]] = [[]]
        x = 0
        for index, item in enumerate(self._items):
            if item.isEmpty():
                continue
            size = item.sizeHint()
            if size.width() > area.width():
                width = max(item.minimumSize().width(), area.width(), 1)
                size = QSize(width, item.heightForWidth(width) if item.hasHeightForWidth() else size.height())
            if rows[-1] and x + size.width() > area.width():
                rows.append([])
                x = 0
            rows[-1].append((item, size, index))
            x += size.width() + self._spacing
        y = area.y()
        for row in rows:
            if not row:
                continue
            height = max(size.height() for _item, size, _index in row)
            used = sum(size.width() for _item, size, _index in row) + self._spacing * (len(row) - 1)
            x = area.x()
            pushed = False
            for item, size, index in row:
                if not pushed and self._right_from is not None and index >= self._right_from:
                    x += max(0, area.width() - used)
                    pushed = True
                if apply:
                    item.setGeometry(QRect(QPoint(x, y + (height - size.height()) // 2), size))
                x += size.width() + self._spacing
            y += height + self._spacing
        return y - self._spacing - rect.y() + margins.bottom() if y > area.y() else margins.top() + margins.bottom()
