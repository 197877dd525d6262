"""Search results: photos as a thumbnail grid; document passages, recording and video moments as cards.

:class:`ResultsView` shows one :class:`engine.search.SearchResponse`: the
photos in a :class:`QListView` in icon mode over a :class:`PhotoModel`, the
passages, recording and video moments in a second list painted as cards by
:class:`CardDelegate` (a video's card shows its thumbnail and the second it
opens at); a card whose file has more matching passages says so
and opens them below itself.  A relevance slider (calibrated: 0.25 means "one
chance in four, among the nearest items, of being what was asked for") hides
results whose meaning is not close enough,
except those a typed word or their name supports; it starts at the library's
default, so a query nothing supports shows "nothing matched".

Thumbnails are the JPEGs saved at index time; :class:`ThumbnailLoader` reads
them (or, failing that, a scaled decode of the original) on the thread pool,
only for the rows a view actually paints, and keeps a bounded cache.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QAction,
    QFont,
    QFontMetrics,
    QGuiApplication,
    QImage,
    QImageReader,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QSizePolicy,
    QSlider,
    QSplitter,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.extractors import VIDEO_EXTENSIONS

from .controller import AppController
from .flow_layout import FlowLayout
from .rich_text import fill_document, is_markdown, snippet_markdown
from .style import (
    format_clock,
    format_date,
    locator_text,
    marked_html,
    mix,
    muted_text,
    parse_time,
    plain_text,
    selected_background,
)

ResultRole = Qt.ItemDataRole.UserRole + 1
ExtraRole = Qt.ItemDataRole.UserRole + 2  # True for a passage opened from a card's "n more passages"
ExpandedRole = Qt.ItemDataRole.UserRole + 3  # True for a card whose other passages are open
HeaderRole = Qt.ItemDataRole.UserRole + 4  # the MonthHeader of a month's title row in the browsed photos
THUMB_SIDE = 320  # as saved at index time
DEFAULT_PHOTO_SIDE = 152  # the width of a thumbnail in the grid (the person can change it in the settings)
# The invalid index, a model's root: the default parent of rowCount(), made once as a default argument would be.
_ROOT = QModelIndex()


def photo_frame(side: int) -> QSize:
    """The thumbnail's box in a cell: landscape, since most photos are."""
    return QSize(side, round(side * 0.78))


def photo_cell(side: int) -> QSize:
    """One photo in the grid: its box, the file name and the date, with a margin."""
    return QSize(side + 16, photo_frame(side).height() + 58)


def read_scaled_image(path: str | os.PathLike, max_side: int) -> QImage:
    """Decode ``path`` at most ``max_side`` pixels on its longest side, EXIF orientation applied.

    Meant for worker threads (QImage is safe off the GUI thread; QPixmap is not).
    JPEGs are decoded at reduced scale directly.  What Qt cannot decode (HEIC:
    Qt has no reader for it on Linux or Windows) is decoded as indexing decodes
    it, through the engine.  A null image when unreadable.
    """
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and max(size.width(), size.height()) > max_side:
        reader.setScaledSize(size.scaled(max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return image if not image.isNull() else _read_through_engine(path, max_side)


def _read_through_engine(path: str | os.PathLike, max_side: int) -> QImage:
    from engine.errors import ExtractionError
    from engine.extractors.images import extract_image

    try:
        rgb = extract_image(path, max_side=max_side).image
    except ExtractionError:
        return QImage()
    return _qimage(rgb)


def read_thumbnail(path: str, saved: Path | None, side: int = THUMB_SIDE, *, at_s: float = 0.0) -> QImage | None:
    """A file's thumbnail: the JPEG saved at index time (``saved``), else the original scaled; None if unreadable.

    A video without a saved thumbnail shows its first frame that is not blank
    (with ``at_s``, its picture at that second).
    Runs on a worker thread (see :meth:`AppController.load_thumbnails`), so it makes QImages only.
    """
    image = QImage(str(saved)) if saved is not None else QImage()
    if image.isNull() and os.path.isfile(path):
        is_video = Path(path).suffix.lower() in VIDEO_EXTENSIONS
        image = _video_poster(path, side, at_s) if is_video else read_scaled_image(path, side)
    return None if image.isNull() else image


def _video_poster(path: str | os.PathLike, max_side: int, at_s: float = 0.0) -> QImage:
    from engine.errors import ExtractionError
    from engine.extractors.video import video_poster

    try:
        rgb = video_poster(path, max_side=max_side, at_s=at_s)
    except ExtractionError:
        return QImage()
    return _qimage(rgb)


def _qimage(rgb: Any) -> QImage:
    """A PIL RGB picture as a QImage that owns its pixels."""
    data = rgb.tobytes()
    # copy(): the QImage must own its pixels, not borrow ``data``, which is freed on return.
    return QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888).copy()


class ThumbnailLoader(QObject):
    """Thumbnails by file id, loaded on the thread pool when first asked for; ``ready`` when one arrives."""

    ready = Signal(int)  # file id
    BATCH = 12

    def __init__(self, controller: AppController, capacity: int = 800, parent: QObject | None = None):
        super().__init__(parent)
        self._controller = controller
        self._capacity = capacity
        self._cache: OrderedDict[int, QPixmap | None] = OrderedDict()  # None: there is none, do not ask again
        self._pending: set[int] = set()
        self._queue: dict[int, str] = {}
        self._closed = False
        self._flush_timer = QTimer(self, singleShot=True, interval=0)
        self._flush_timer.timeout.connect(self._flush)

    def pixmap(self, file_id: int, path: str) -> QPixmap | None:
        """The thumbnail if loaded (a null pixmap when there is none); None while loading."""
        if file_id in self._cache:
            self._cache.move_to_end(file_id)
            cached = self._cache[file_id]
            return cached if cached is not None else QPixmap()
        if file_id not in self._pending and not self._closed:
            self._pending.add(file_id)
            self._queue[file_id] = path
            self._flush_timer.start()
        return None

    def loading(self) -> int:
        return len(self._pending)

    def clear(self) -> None:
        """Forget cached thumbnails (after re-indexing: files may have changed)."""
        self._cache.clear()

    def close(self) -> None:
        self._closed = True
        self._flush_timer.stop()
        self._queue.clear()

    def _flush(self) -> None:
        if self._closed or not self._controller.is_open:
            self._pending.difference_update(self._queue)
            self._queue.clear()
            return
        items = list(self._queue.items())
        self._queue.clear()
        for start in range(0, len(items), self.BATCH):
            batch = dict(items[start : start + self.BATCH])
            self._controller.load_thumbnails(batch, read_thumbnail, self._loaded, partial(self._failed, batch))

    def _loaded(self, images: dict[int, QImage | None]) -> None:
        if self._closed:
            return
        for file_id, image in images.items():
            self._pending.discard(file_id)
            self._cache[file_id] = QPixmap.fromImage(image) if image is not None else None
            self.ready.emit(file_id)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    def _failed(self, batch: dict[int, str], _message: str) -> None:
        # The library closed or a file vanished under us: show placeholders, do not retry forever.
        if self._closed:
            return
        self._loaded(dict.fromkeys(batch))


def result_tooltip(result: Any) -> str:
    lines = [Path(result.path).name, result.path]
    where = locator_text(result)
    when = format_date(result.media_time, with_time=result.kind in ("image", "video"))
    if where:
        lines.append(where[0].upper() + where[1:])
    if when:
        lines.append({"image": "Taken ", "video": "Filmed "}.get(result.kind, "Dated ") + when)
    if result.tags:
        lines.append("Tags: " + ", ".join(result.tags))
    if getattr(result, "name_match", None):
        lines.append("Its name is what you typed" if result.name_match == "file" else "In a folder named as you typed")
    relevance = getattr(result, "relevance", None)
    if relevance is not None:
        lines.append(f"Relevance {relevance:.2f} (similarity {result.similarity:.3f})")
    elif result.similarity is not None:
        lines.append(f"Similarity {result.similarity:.3f}")
    matched = getattr(result, "matched", None)
    if matched:
        lines.append("Matched your words: " + ", ".join(matched))
    return "\n".join(lines)


MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class MonthHeader:
    """The title row of one month in the browsed photos (year 0: the photos whose date is unknown)."""

    year: int
    month: int
    count: int | None = None  # how many photos the month has in the library (None: not known)

    @property
    def key(self) -> tuple[int, int]:
        return (self.year, self.month)

    @property
    def label(self) -> str:
        title = f"{MONTHS[self.month - 1]} {self.year}" if self.year else "Date unknown"
        if self.count is None:
            return title
        return f"{title}  ·  {self.count} {'photo' if self.count == 1 else 'photos'}"


def month_of(result: Any) -> tuple[int, int]:
    """(year, month) a result was taken or dated in, local time; (0, 0) when unknown."""
    moment = parse_time(result.media_time)
    return (moment.year, moment.month) if moment is not None else (0, 0)


class ResultListModel(QAbstractListModel):
    """A list of :class:`engine.search.SearchResult` that can grow at its end.

    When more can follow (:meth:`set_more_available`), a view scrolled to the
    end asks through ``fetchMore``; the model says so by ``more_wanted`` and
    asks again only after the owner answered (more rows, or nothing more).
    """

    more_wanted = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._results: list[Any] = []  # the rows: results (and, in the photo model, month headers)
        self._more = False
        self._asked = False

    def set_results(self, results: Sequence[Any]) -> None:
        self.beginResetModel()
        self._results = list(results)
        self._asked = False
        self.endResetModel()

    def append_results(self, results: Sequence[Any]) -> None:
        """Add ``results`` after the last row (the rows shown stay where they are)."""
        self._asked = False
        if not results:
            return
        first = len(self._results)
        self.beginInsertRows(QModelIndex(), first, first + len(results) - 1)
        self._results.extend(results)
        self.endInsertRows()

    def set_more_available(self, more: bool) -> None:
        """Whether more rows can follow the last one (a view at the end then asks for them)."""
        self._more = more
        self._asked = False

    def more_available(self) -> bool:
        return self._more

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> bool:
        return not parent.isValid() and self._more and not self._asked

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> None:
        if self.canFetchMore(parent):
            self._asked = True
            self.more_wanted.emit()

    def results(self) -> list[Any]:
        return [r for r in self._results if not isinstance(r, MonthHeader)]

    def result(self, row: int) -> Any:
        row_value = self._results[row] if 0 <= row < len(self._results) else None
        return None if isinstance(row_value, MonthHeader) else row_value

    def row_of_item(self, item_id: int) -> int:
        for row, result in enumerate(self._results):
            if not isinstance(result, MonthHeader) and result.item_id == item_id:
                return row
        return -1

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._results)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._results):
            return None
        result = self._results[index.row()]
        if isinstance(result, MonthHeader):
            if role == HeaderRole:
                return result
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
                return result.label
            return None
        if role == ResultRole:
            return result
        if role == Qt.ItemDataRole.DisplayRole:
            return Path(result.path).name
        if role == Qt.ItemDataRole.ToolTipRole:
            return result_tooltip(result)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{Path(result.path).name} {locator_text(result)} {plain_text(result.snippet)}".strip()
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid() or self.result(index.row()) is None:
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """Dragging results out gives other applications the files."""
        data = QMimeData()
        chosen = [self.result(i.row()) for i in indexes if i.isValid()]
        paths = list(dict.fromkeys(r.path for r in chosen if r is not None))
        data.setUrls([QUrl.fromLocalFile(p) for p in paths])
        return data


class PhotoModel(ResultListModel):
    """Photos; the decoration is the thumbnail, loaded lazily when a row is painted.

    While ``grouped`` (browsing the library) each month starts with a
    :class:`MonthHeader` row, titled with the month's count from :meth:`set_months`.
    """

    def __init__(self, thumbnails: ThumbnailLoader, parent: QObject | None = None):
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.grouped = False
        self._counts: dict[tuple[int, int], int] = {}
        self._row_of_file: dict[int, int] = {}  # a thumbnail that arrives finds its row at once in a long list
        self.header_rows: set[int] = set()  # the rows of the month titles
        thumbnails.ready.connect(self._thumbnail_ready)

    def set_results(self, results: Sequence[Any]) -> None:
        self._row_of_file = {}
        self.header_rows = set()
        super().set_results(self._with_headers(results, None))
        self._index_rows(0)

    def append_results(self, results: Sequence[Any]) -> None:
        last = next((month_of(r) for r in reversed(self._results) if not isinstance(r, MonthHeader)), None)
        first = len(self._results)
        super().append_results(self._with_headers(results, last))
        self._index_rows(first)

    def _index_rows(self, first: int) -> None:
        for row in range(first, len(self._results)):
            result = self._results[row]
            if isinstance(result, MonthHeader):
                self.header_rows.add(row)
            else:
                self._row_of_file.setdefault(result.file_id, row)

    def _with_headers(self, results: Sequence[Any], last: tuple[int, int] | None) -> list[Any]:
        if not self.grouped:
            return list(results)
        rows: list[Any] = []
        for result in results:
            month = month_of(result)
            if month != last:
                rows.append(MonthHeader(*month, self._counts.get(month)))
                last = month
            rows.append(result)
        return rows

    def set_months(self, months: Sequence[tuple[int, int, int]]) -> None:
        """The library's (year, month, photos) counts, shown in the month titles."""
        self._counts = {(y, m): n for y, m, n in months}
        for row, header in enumerate(self._results):
            if isinstance(header, MonthHeader) and self._counts.get(header.key) != header.count:
                self._results[row] = MonthHeader(header.year, header.month, self._counts.get(header.key))
                self.dataChanged.emit(self.index(row), self.index(row))

    def header_row(self, year: int, month: int) -> int:
        """The row of a month's title (-1 when none of its photos is loaded)."""
        for row, header in enumerate(self._results):
            if isinstance(header, MonthHeader) and header.key == (year, month):
                return row
        return -1

    def headers(self) -> list[MonthHeader]:
        return [r for r in self._results if isinstance(r, MonthHeader)]

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DecorationRole and index.isValid():
            result = self.result(index.row())
            return None if result is None else self.thumbnails.pixmap(result.file_id, result.path)
        return super().data(index, role)

    def _thumbnail_ready(self, file_id: int) -> None:
        row = self._row_of_file.get(file_id)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class PassageModel(ResultListModel):
    """Passages, recording and video moments, one card per file; a card opens its file's other passages below it.

    A video's decoration is its thumbnail (from ``thumbnails``, when given).
    """

    def __init__(self, parent: QObject | None = None, thumbnails: ThumbnailLoader | None = None):
        super().__init__(parent)
        self._extra: set[int] = set()  # item ids of opened passages
        self._expanded: set[int] = set()  # item ids of cards whose passages are open
        self.thumbnails = thumbnails
        if thumbnails is not None:
            thumbnails.ready.connect(self._thumbnail_ready)

    def _thumbnail_ready(self, file_id: int) -> None:
        for row, result in enumerate(self._results):
            if result.file_id == file_id and result.kind == "video":
                index = self.index(row)
                self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def set_results(self, results: Sequence[Any]) -> None:
        self._extra.clear()
        self._expanded.clear()
        super().set_results(results)

    def results(self) -> list[Any]:
        """The cards (not the passages opened below them)."""
        return [r for r in self._results if r.item_id not in self._extra]

    def shown_rows(self) -> list[Any]:
        """Every row: cards and opened passages, in order."""
        return list(self._results)

    def is_extra(self, row: int) -> bool:
        result = self.result(row)
        return result is not None and result.item_id in self._extra

    def toggle_more(self, row: int) -> bool:
        """Open (or close) the other passages of the card at ``row``; False when it has none."""
        result = self.result(row)
        if result is None or result.item_id in self._extra or not getattr(result, "more", None):
            return False
        if result.item_id in self._expanded:
            ids = {m["item_id"] for m in result.more}
            count = sum(1 for r in self._results[row + 1 : row + 1 + len(ids)] if r.item_id in ids)
            self.beginRemoveRows(QModelIndex(), row + 1, row + count)
            del self._results[row + 1 : row + 1 + count]
            self._extra -= ids
            self._expanded.discard(result.item_id)
            self.endRemoveRows()
        else:
            extras = [_passage_result(result, more) for more in result.more]
            self.beginInsertRows(QModelIndex(), row + 1, row + len(extras))
            self._results[row + 1 : row + 1] = extras
            self._extra.update(r.item_id for r in extras)
            self._expanded.add(result.item_id)
            self.endInsertRows()
        index = self.index(row)
        self.dataChanged.emit(index, index, [ExpandedRole])
        return True

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DecorationRole:
            result = self.result(index.row())
            if result is None or result.kind != "video" or self.thumbnails is None:
                return None
            return self.thumbnails.pixmap(result.file_id, result.path)
        if role == ExtraRole:
            return self.is_extra(index.row())
        if role == ExpandedRole:
            result = self.result(index.row())
            return result is not None and result.item_id in self._expanded
        return super().data(index, role)


def _passage_result(card: Any, more: dict[str, Any]) -> Any:
    """A result for one of a card's other passages (same file; its own place, snippet and scores)."""
    from dataclasses import replace

    return replace(
        card,
        item_id=more["item_id"],
        locator=dict(more.get("locator") or {}),
        snippet=more.get("snippet"),
        score=more.get("score", 0.0),
        relevance=more.get("relevance"),
        similarity=more.get("similarity"),
        more=[],
        name_match=None,
    )


def card_place_text(result: Any) -> str:
    """What a card says after the file name: ``page 3``, ``01:05–01:20``, or ``Video · 01:23`` (where it opens)."""
    if result.kind == "video":
        start = (result.locator or {}).get("start")
        return f"Video · {format_clock(float(start))}" if start is not None else "Video"
    return locator_text(result)


def card_snippet(result: Any) -> str:
    """The text of a card; what stands in for it when nothing was said or written there."""
    if result.snippet:
        return str(result.snippet)
    if result.kind == "video":
        return "(found in the picture)"
    return "(no words heard)" if result.kind == "audio" else "(no text)"


def more_label(result: Any, expanded: bool) -> str:
    """The line under a card that opens its file's other passages ("" when it has none)."""
    count = len(getattr(result, "more", None) or [])
    if not count:
        return ""
    noun = "passage" if count == 1 else "passages"
    if result.kind in ("audio", "video"):
        noun = "moment" if count == 1 else "moments"
    return f"▾ Hide {count} more {noun}" if expanded else f"▸ {count} more {noun} in this file"


class PhotoDelegate(QStyledItemDelegate):
    """A photo cell: the thumbnail fitted in a square, the file name and the date below."""

    PAD = 8

    def __init__(self, parent: QObject | None = None, side: int = DEFAULT_PHOTO_SIDE):
        super().__init__(parent)
        self.side = side

    HEADER_HEIGHT = 34

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        view = self.parent()
        if isinstance(view, _PhotoGrid) and view.grouped:
            # Without a grid, a month's title takes a whole row and the photos the width the grid would give
            # them.  Asked of every row at each layout, so it looks at the model's rows directly.
            model = index.model()
            if isinstance(model, PhotoModel) and index.row() in model.header_rows:
                return QSize(view.row_width(), self.HEADER_HEIGHT)
            return view._gridded
        return photo_cell(self.side)

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        header = index.data(HeaderRole)
        if header is not None:
            self._paint_header(painter, option, header)
            return
        result = index.data(ResultRole)
        if result is None:
            return
        palette = option.palette
        state = option.state
        cell = option.rect.adjusted(3, 3, -3, -3)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        highlight = palette.color(QPalette.ColorRole.Highlight)
        base = palette.color(QPalette.ColorRole.Base)
        if state & QStyle.StateFlag.State_Selected:
            painter.setPen(QPen(highlight, 2))
            painter.setBrush(selected_background(palette))
            painter.drawRoundedRect(cell, 7, 7)
        elif state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(mix(highlight, base, 0.08))
            painter.drawRoundedRect(cell, 7, 7)

        box = photo_frame(self.side)
        frame = QRect(0, 0, min(box.width(), cell.width() - 2 * self.PAD), box.height())
        frame.moveTopLeft(cell.topLeft() + QPoint((cell.width() - frame.width()) // 2, self.PAD))
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            size = pixmap.size().scaled(frame.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(frame.center())
            painter.drawPixmap(target, pixmap)
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(mix(palette.color(QPalette.ColorRole.Text), base, 0.07))
            painter.drawRoundedRect(frame, 5, 5)
            painter.setPen(muted_text(palette))
            painter.drawText(frame, Qt.AlignmentFlag.AlignCenter, "…" if pixmap is None else "no preview")

        text_rect = QRect(cell.left() + 4, frame.bottom() + 5, cell.width() - 8, cell.bottom() - frame.bottom() - 5)
        metrics = QFontMetrics(option.font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        name = metrics.elidedText(Path(result.path).name, Qt.TextElideMode.ElideMiddle, text_rect.width())
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, name)
        date = format_date(result.media_time)
        if date:
            small = QFont(option.font)
            small.setPointSizeF(max(6.0, option.font.pointSizeF() * 0.88))
            painter.setFont(small)
            painter.setPen(muted_text(palette))
            painter.drawText(
                text_rect.adjusted(0, metrics.height() + 1, 0, 0),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                date,
            )
        if state & QStyle.StateFlag.State_HasFocus and option.widget is not None and option.widget.hasFocus():
            painter.setPen(QPen(highlight, 1, Qt.PenStyle.DotLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(cell.adjusted(1, 1, -1, -1), 7, 7)
        painter.restore()

    def _paint_header(self, painter: QPainter, option: QStyleOptionViewItem, header: MonthHeader) -> None:
        painter.save()
        font = QFont(option.font)
        font.setWeight(QFont.Weight.DemiBold)
        font.setPointSizeF(option.font.pointSizeF() * 1.15)
        painter.setFont(font)
        # A title row is not selectable, which Qt paints as disabled: use the active colours.
        text = option.palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Text)
        base = option.palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Base)
        painter.setPen(text)
        text_rect = option.rect.adjusted(8, 8, -8, -2)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, header.label)
        painter.setPen(QPen(mix(text, base, 0.15), 1))
        painter.drawLine(option.rect.left() + 8, option.rect.bottom(), option.rect.right() - 8, option.rect.bottom())
        painter.restore()


class CardDelegate(QStyledItemDelegate):
    """A passage or recording moment as a card: file, page or time, date; the snippet with matches in bold."""

    MARGIN = 4  # around the card
    PAD = 10  # inside it
    ICON = 16

    def __init__(self, view: QListView):
        super().__init__(view)
        self._view = view

    def _document(self, result: Any, palette: QPalette, font: QFont, width: int) -> QTextDocument:
        doc = QTextDocument()
        doc.setDefaultFont(font)
        doc.setDocumentMargin(0)
        if result.snippet and is_markdown(result.path):
            # A note's snippet reads as text: "# Club meeting" shows as "Club meeting", **bold** as bold.
            fill_document(doc, snippet_markdown(card_snippet(result)), palette, markdown=True, compact=True)
        else:
            doc.setHtml(marked_html(card_snippet(result), palette))
        doc.setTextWidth(max(40, width))
        return doc

    def _header_wraps(self, result: Any, font: QFont, inner_width: int) -> bool:
        """Whether the file's name, its place and its date do not fit on one line of the card."""
        metrics = QFontMetrics(font)
        bold = QFont(font)
        bold.setWeight(QFont.Weight.DemiBold)
        date = format_date(result.media_time)
        where = card_place_text(result)
        needed = (
            self.ICON
            + 6
            + QFontMetrics(bold).horizontalAdvance(Path(result.path).name)
            + (metrics.horizontalAdvance(f"  ·  {where}") if where else 0)
            + (metrics.horizontalAdvance(date) + 12 if date else 0)
        )
        return needed > inner_width

    def _text_width(self, width: int) -> int:
        return width - 2 * self.MARGIN - 2 * self.PAD

    THUMB = QSize(112, 63)  # a video card's picture (16:9)

    def _thumb_room(self, result: Any) -> int:
        """How much of a card's width its video thumbnail takes (0 for other cards)."""
        return self.THUMB.width() + self.PAD if result.kind == "video" else 0

    INDENT = 28  # an opened passage sits under its card

    def _footer(self, index: QModelIndex | QPersistentModelIndex) -> str:
        result = index.data(ResultRole)
        if result is None or index.data(ExtraRole):
            return ""
        return more_label(result, bool(index.data(ExpandedRole)))

    def _card_rect(self, option_rect: QRect, index: QModelIndex | QPersistentModelIndex) -> QRect:
        card = option_rect.adjusted(self.MARGIN, self.MARGIN, -self.MARGIN, -self.MARGIN)
        if index.data(ExtraRole):
            card.setLeft(card.left() + self.INDENT)
        return card

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        result = index.data(ResultRole)
        width = max(120, self._view.viewport().width())  # the width paint() gets: the text wraps the same
        if result is None:
            return QSize(width, 40)
        indent = self.INDENT if index.data(ExtraRole) else 0
        thumb = self._thumb_room(result)
        inner_width = self._text_width(width) - indent - thumb
        doc = self._document(result, option.palette, option.font, inner_width)
        line = QFontMetrics(option.font).height()
        footer = line + 6 if self._footer(index) else 0
        header = 2 * line if self._header_wraps(result, option.font, inner_width) else line
        content = int(doc.size().height()) + header + 6
        if thumb:
            content = max(content, self.THUMB.height())
        return QSize(width, content + footer + 2 * self.PAD + 2 * self.MARGIN)

    def footer_rect(self, option_rect: QRect, index: QModelIndex | QPersistentModelIndex, font: QFont) -> QRect:
        """Where a card's "n more passages" line is (empty when it has none)."""
        if not self._footer(index):
            return QRect()
        inner = self._card_rect(option_rect, index).adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        line = QFontMetrics(font).height()
        width = QFontMetrics(font).horizontalAdvance(self._footer(index)) + 8
        return QRect(inner.left(), inner.bottom() - line, min(width, inner.width()), line + 2)

    def editorEvent(
        self, event: QEvent, model: Any, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> bool:
        if (
            isinstance(event, QMouseEvent)
            and event.type() == QEvent.Type.MouseButtonRelease
            and event.button() == Qt.MouseButton.LeftButton
            and self.footer_rect(option.rect, index, option.font).contains(event.position().toPoint())
            and isinstance(model, PassageModel)
        ):
            return model.toggle_more(index.row())
        return super().editorEvent(event, model, option, index)

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        result = index.data(ResultRole)
        if result is None:
            return
        palette = option.palette
        state = option.state
        card = self._card_rect(option.rect, index)
        highlight = palette.color(QPalette.ColorRole.Highlight)
        base = palette.color(QPalette.ColorRole.Base)
        text_colour = palette.color(QPalette.ColorRole.Text)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if state & QStyle.StateFlag.State_Selected:
            painter.setPen(QPen(highlight, 2))
            painter.setBrush(selected_background(palette))
        else:
            painter.setPen(QPen(mix(text_colour, base, 0.18), 1))
            painter.setBrush(mix(highlight, base, 0.06) if state & QStyle.StateFlag.State_MouseOver else base)
        painter.drawRoundedRect(card.adjusted(0, 0, -1, -1), 7, 7)

        inner = card.adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        if result.kind == "video":
            self._paint_thumbnail(painter, index, QRect(inner.topLeft(), self.THUMB), palette)
            inner.setLeft(inner.left() + self._thumb_room(result))
        metrics = QFontMetrics(option.font)
        line = metrics.height()
        style = (option.widget or self._view).style()
        icon = style.standardIcon(
            {"audio": QStyle.StandardPixmap.SP_MediaVolume, "video": QStyle.StandardPixmap.SP_MediaPlay}.get(
                result.kind, QStyle.StandardPixmap.SP_FileIcon
            )
        )
        icon.paint(painter, QRect(inner.left(), inner.top() + (line - self.ICON) // 2, self.ICON, self.ICON))

        date = format_date(result.media_time)
        where = card_place_text(result)
        bold = QFont(option.font)
        bold.setWeight(QFont.Weight.DemiBold)
        bold_metrics = QFontMetrics(bold)
        left = inner.left() + self.ICON + 6
        header_lines = 1
        if self._header_wraps(result, option.font, inner.width()):
            # A narrow card: the whole name on the first line, its place and date under it.
            header_lines = 2
            name = bold_metrics.elidedText(Path(result.path).name, Qt.TextElideMode.ElideMiddle, inner.right() - left)
            painter.setFont(bold)
            painter.setPen(text_colour)
            painter.drawText(
                QRect(left, inner.top(), inner.right() - left, line),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                name,
            )
            painter.setFont(option.font)
            painter.setPen(muted_text(palette))
            below = "  ·  ".join(part for part in (where, date) if part)
            painter.drawText(
                QRect(left, inner.top() + line, inner.right() - left, line),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                metrics.elidedText(below, Qt.TextElideMode.ElideRight, inner.right() - left),
            )
        else:
            date_width = metrics.horizontalAdvance(date) + 4 if date else 0
            where_text = f"  ·  {where}" if where else ""
            room = inner.right() - left - date_width - 8
            name = Path(result.path).name
            painter.setFont(bold)
            painter.setPen(text_colour)
            header = QRect(left, inner.top(), room, line)
            painter.drawText(header, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
            painter.setFont(option.font)
            painter.setPen(muted_text(palette))
            name_width = bold_metrics.horizontalAdvance(name)
            painter.drawText(
                QRect(left + name_width, inner.top(), max(0, room - name_width), line),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                metrics.elidedText(where_text, Qt.TextElideMode.ElideRight, max(0, room - name_width)),
            )
            if date:
                painter.drawText(
                    QRect(inner.right() - date_width, inner.top(), date_width, line),
                    Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                    date,
                )

        footer = self._footer(index)
        if footer:
            painter.setPen(palette.color(QPalette.ColorRole.Link))
            painter.drawText(
                self.footer_rect(option.rect, index, option.font),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                footer,
            )
        doc = self._document(result, palette, option.font, inner.width())
        painter.translate(inner.left(), inner.top() + header_lines * line + 6)
        context = QAbstractTextDocumentLayout.PaintContext()
        context.palette = QPalette(palette)
        context.palette.setColor(QPalette.ColorRole.Text, text_colour)
        doc.documentLayout().draw(painter, context)
        painter.restore()

    def _paint_thumbnail(
        self, painter: QPainter, index: QModelIndex | QPersistentModelIndex, frame: QRect, palette: QPalette
    ) -> None:
        """A video's picture fitted in ``frame`` (a placeholder while it loads or when there is none)."""
        base = palette.color(QPalette.ColorRole.Base)
        painter.save()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(mix(palette.color(QPalette.ColorRole.Text), base, 0.07))
        painter.drawRoundedRect(frame, 4, 4)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            size = pixmap.size().scaled(frame.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(frame.center())
            painter.drawPixmap(target, pixmap)
        else:
            painter.setPen(muted_text(palette))
            painter.drawText(frame, Qt.AlignmentFlag.AlignCenter, "…" if pixmap is None else "no preview")
        painter.restore()


class _ResultList(QListView):
    """A results list: Enter opens, Space previews (reported to the owner through an event filter)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setMouseTracking(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setFrameShape(QFrame.Shape.NoFrame)


class _PhotoGrid(_ResultList):
    """The photo grid: cells widen a little so that the columns fill the width evenly."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setUniformItemSizes(True)
        self.setSpacing(0)
        self.setBatchSize(400)
        self.cell = photo_cell(DEFAULT_PHOTO_SIDE)
        self.grouped = False  # month titles between the photos: items sized by the delegate, not a grid
        self._gridded = self.cell
        self.setGridSize(self.cell)

    def set_cell(self, cell: QSize) -> None:
        self.cell = cell
        self._fit_grid()

    def set_grouped(self, grouped: bool) -> None:
        """Lay the photos out in a grid (search results) or with month titles between them (browsing)."""
        if grouped == self.grouped:
            return
        self.grouped = grouped
        self.setUniformItemSizes(not grouped)
        self.setGridSize(QSize() if grouped else self._gridded)
        # Thousands of browsed photos are laid out a batch at a time between events, so that a
        # page arriving never holds the window up (at 10,000 photos a whole layout takes ~0.1 s).
        self.setLayoutMode(QListView.LayoutMode.Batched if grouped else QListView.LayoutMode.SinglePass)
        self._fit_grid()

    def lay_out_now(self) -> None:
        """Finish laying out every row at once (before scrolling to one far down)."""
        mode = self.layoutMode()
        self.setLayoutMode(QListView.LayoutMode.SinglePass)
        self.doItemsLayout()
        self.setLayoutMode(mode)

    def gridded_cell(self) -> QSize:
        """A photo's cell: the columns fill the width evenly."""
        return self._gridded

    def row_width(self) -> int:
        return max(self.cell.width(), self._usable_width())

    def _usable_width(self) -> int:
        # As if the scroll bar were there, so that it appearing never drops a column.
        return (
            self.width() - 2 * self.frameWidth() - self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent) - 2
        )

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit_grid()

    def _fit_grid(self) -> None:
        width = self._usable_width()
        columns = max(1, width // self.cell.width())
        grid = QSize(max(self.cell.width(), width // columns), self.cell.height())
        changed = grid != self._gridded
        self._gridded = grid
        if self.grouped:
            if changed:
                self.scheduleDelayedItemsLayout()
        elif grid != self.gridSize():
            self.setGridSize(grid)


def _titled_section(title: str, view: QWidget, *, right_margin: int) -> tuple[QWidget, QLabel]:
    """A section of the results: its title above its view; returns (section, title label)."""
    label = QLabel(title)
    label.setObjectName("SectionTitle")
    label.setWordWrap(True)  # a long title ("Documents and recordings · newest first") never sets the results' width
    section = QWidget()
    layout = QVBoxLayout(section)
    layout.setContentsMargins(8, 2, right_margin, 0)
    layout.setSpacing(2)
    layout.addWidget(label)
    layout.addWidget(view, 1)
    return section, label


class _CountLabel(QLabel):
    """The result count: on one line where the header has room for it, wrapped where it has not."""

    def __init__(self, text: str = ""):
        super().__init__(text)
        self.setWordWrap(True)

    def sizeHint(self) -> QSize:
        margins = self.contentsMargins()
        width = self.fontMetrics().horizontalAdvance(self.text()) + margins.left() + margins.right() + 2
        return QSize(width, super().sizeHint().height() if not self.text() else self.heightForWidth(width))


class _RelevanceRow(QWidget):
    """ "Relevance", the slider and its value: the slider 140 pixels wide where there is room."""

    SLIDER_WIDTH = 140

    def __init__(self, slider: QSlider):
        super().__init__()
        self._slider = slider

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(hint.width() + max(0, self.SLIDER_WIDTH - self._slider.sizeHint().width()), hint.height())


class ResultsView(QWidget):
    """The results of one search, with a relevance threshold and an empty state."""

    current_changed = Signal(object)  # SearchResult or None
    current_updated = Signal(object)  # the same result as current, found again (its tags may differ)
    selection_changed = Signal()
    open_requested = Signal(object)  # SearchResult: Enter or double-click
    preview_requested = Signal(object)  # SearchResult: Space
    context_menu_requested = Signal(QPoint)  # global position
    shown_changed = Signal(int)  # how many results are shown (after the threshold)
    more_wanted = Signal(str)  # "photos" or "passages": that list was scrolled to its end and more can follow
    photos_needed = Signal(int)  # browsing: a month was chosen whose photos need this many loaded first
    month_shown = Signal(int, int)  # browsing: the photos were scrolled to this month's title (year, month)

    SLIDER_STEPS = 100

    def __init__(self, thumbnails: ThumbnailLoader, parent: QWidget | None = None):
        super().__init__(parent)
        self._all: list[Any] = []
        self._current: Any = None
        self._clearing = False

        # -- header: count and relevance
        self.count_label = _CountLabel("")
        self.count_label.setTextFormat(Qt.TextFormat.PlainText)
        self.relevance_label = QLabel("Relevance")
        self.relevance_slider = QSlider(Qt.Orientation.Horizontal)
        self.relevance_slider.setRange(0, self.SLIDER_STEPS)
        # Narrower in a narrow window (down to 60 pixels) rather than pushing the results wider.
        self.relevance_slider.setMinimumWidth(60)
        self.relevance_slider.setMaximumWidth(140)
        self.relevance_slider.setToolTip(
            "Hide results whose meaning is not close to your search.\n"
            "Relevance is calibrated for each model: at 0.25 a result near the top has about one chance in four\n"
            "of being what you asked for, at 0.50 one in two; further right asks for closer matches.\n"
            "Results that contain the words you typed, or are named as you typed, always stay."
        )
        self.relevance_slider.setAccessibleName("Relevance threshold")
        self.relevance_slider.setPageStep(10)
        self.relevance_slider.valueChanged.connect(self._apply_threshold)
        self.threshold_label = QLabel("all")
        self.threshold_label.setMinimumWidth(QFontMetrics(self.font()).horizontalAdvance("≥ 0.00") + 4)
        self.show_hidden_button = QToolButton()
        self.show_hidden_button.setText("Show all")
        self.show_hidden_button.setToolTip("Show the results below the relevance threshold too")
        self.show_hidden_button.clicked.connect(lambda: self.relevance_slider.setValue(0))
        self.show_hidden_button.hide()
        # The count on the left, the relevance controls on the right; in a narrow window the count
        # wraps and the controls go under it, rather than make the results wider than the window.
        relevance = _RelevanceRow(self.relevance_slider)
        relevance_layout = QHBoxLayout(relevance)
        relevance_layout.setContentsMargins(0, 0, 0, 0)
        relevance_layout.addWidget(self.relevance_label)
        relevance_layout.addWidget(self.relevance_slider, 1)
        relevance_layout.addWidget(self.threshold_label)
        self.header = QWidget()
        header = FlowLayout(self.header, spacing=6, right_from=1)
        header.setContentsMargins(8, 4, 8, 4)
        header.addWidget(self.count_label)
        header.addWidget(self.show_hidden_button)
        header.addWidget(relevance)

        # -- photos
        self.photo_model = PhotoModel(thumbnails, self)
        self.photo_view = _PhotoGrid()
        self.photo_view.setObjectName("PhotoGrid")
        self.photo_delegate = PhotoDelegate(self.photo_view)
        self.photo_view.setItemDelegate(self.photo_delegate)
        self.photo_view.setModel(self.photo_model)
        # Beside the photos while browsing: the years and months, to jump to one.
        self.month_list = QTreeWidget()
        self.month_list.setObjectName("MonthList")
        self.month_list.setHeaderHidden(True)
        self.month_list.setColumnCount(1)
        self.month_list.setIndentation(10)
        self.month_list.setRootIsDecorated(False)
        self.month_list.setFixedWidth(QFontMetrics(self.font()).horizontalAdvance("September · 0000") + 36)
        self.month_list.setFrameShape(QFrame.Shape.NoFrame)
        self.month_list.setAccessibleName("Jump to a month")
        self.month_list.setToolTip("Jump to a year or a month")
        self.month_list.itemActivated.connect(self._month_chosen)
        self.month_list.itemClicked.connect(self._month_chosen)
        self.month_list.hide()
        grid_and_months = QWidget()
        beside = QHBoxLayout(grid_and_months)
        beside.setContentsMargins(0, 0, 0, 0)
        beside.setSpacing(4)
        beside.addWidget(self.photo_view, 1)
        beside.addWidget(self.month_list)
        photos, self.photo_title = _titled_section("Photos", grid_and_months, right_margin=0)
        self.photo_section = photos
        self.browsing = False  # the library in time order (no query) rather than search results
        self._months: list[tuple[int, int, int]] = []
        self._pending_jump: tuple[int, int] | None = None
        self.photo_model.more_wanted.connect(lambda: self.more_wanted.emit("photos"))
        self.photo_view.verticalScrollBar().valueChanged.connect(self._photos_scrolled)

        # -- passages and recording moments
        self.passage_model = PassageModel(self, thumbnails)
        self.passage_view = _ResultList()
        self.passage_view.setObjectName("PassageList")
        self.passage_view.setUniformItemSizes(False)
        self.passage_view.setWordWrap(True)
        self.passage_view.setSpacing(0)
        self.passage_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.passage_view.setItemDelegate(CardDelegate(self.passage_view))
        self.passage_view.setModel(self.passage_model)
        self.passage_model.more_wanted.connect(lambda: self.more_wanted.emit("passages"))
        passages, self.passage_title = _titled_section("Documents and recordings", self.passage_view, right_margin=4)
        self.passage_section = passages

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(photos)
        self.splitter.addWidget(passages)
        self.splitter.setChildrenCollapsible(False)
        self._user_split = False  # the person dragged the divider: leave it where they put it
        self.splitter.splitterMoved.connect(lambda *_: setattr(self, "_user_split", True))

        # -- the empty state
        self.empty_label = QLabel("Type to search")
        self.empty_label.setObjectName("EmptyState")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setTextFormat(Qt.TextFormat.PlainText)
        self.empty_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        palette = self.empty_label.palette()
        palette.setColor(QPalette.ColorRole.WindowText, muted_text(self.palette()))
        self.empty_label.setPalette(palette)
        self.empty_button = QToolButton()  # what to do about it ("Add folder…"), when there is something
        self.empty_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.empty_button.hide()
        self.empty_page = QWidget()
        empty_layout = QVBoxLayout(self.empty_page)
        empty_layout.addStretch(1)
        empty_layout.addWidget(self.empty_label)
        empty_layout.addSpacing(8)
        empty_layout.addWidget(self.empty_button, 0, Qt.AlignmentFlag.AlignHCenter)
        empty_layout.addStretch(1)

        results_page = QWidget()
        results_layout = QVBoxLayout(results_page)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.setSpacing(0)
        results_layout.addWidget(self.header)
        results_layout.addWidget(self.splitter, 1)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_page)
        self.stack.addWidget(results_page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        for view in (self.photo_view, self.passage_view):
            view.installEventFilter(self)
            view.selectionModel().selectionChanged.connect(lambda *_, v=view: self._selection_changed(v))
            view.selectionModel().currentChanged.connect(lambda current, _prev, v=view: self._current_moved(v, current))
            view.doubleClicked.connect(lambda index: self.open_requested.emit(index.data(ResultRole)))
            view.customContextMenuRequested.connect(lambda pos, v=view: self._context_menu(v, pos))
        self._update_threshold_label(None)

    # -- showing -------------------------------------------------------------------

    def set_thumbnail_size(self, side: int) -> None:
        """Show photos ``side`` pixels wide in the grid."""
        side = max(48, int(side))
        self.photo_delegate.side = side
        self.photo_view.set_cell(photo_cell(side))
        self.photo_view.doItemsLayout()
        self._balance()

    def set_results(self, results: Sequence[Any], *, fresh: bool = False, more: bool = False) -> None:
        """Show these results (the threshold slider keeps its position); ``more``: more can follow them.

        ``fresh``: they answer another search, so nothing stays selected and both
        lists show their top; otherwise (the same search found again) what was
        selected stays selected.
        """
        self._leave_browsing()
        self._all = list(results)
        if fresh:
            self.clear_selection()
        self._configure_slider()
        self._apply_threshold()
        if fresh:
            self.photo_view.scrollToTop()
            self.passage_view.scrollToTop()
        self.photo_model.set_more_available(more)
        self.passage_model.set_more_available(more)

    def clear_selection(self) -> None:
        """Select nothing and have no current result (``current_changed(None)`` if there was one)."""
        had_current = self._current is not None
        self._clearing = True
        try:
            for view in (self.photo_view, self.passage_view):
                view.selectionModel().clear()
        finally:
            self._clearing = False
        self._current = None
        if had_current:
            self.current_changed.emit(None)
        self.selection_changed.emit()

    def append_results(self, results: Sequence[Any], *, more: bool = False) -> int:
        """Add the next results below those shown, leaving out files already there; how many were new.

        ``more``: still more can follow.  What is shown keeps its place and order.
        """
        known = {r.file_id for r in self._all}
        new = []
        for result in results:
            if result.file_id not in known:
                known.add(result.file_id)
                new.append(result)
        self._all.extend(new)
        threshold = self.threshold()
        shown = [r for r in new if self._passes(r, threshold)]
        self.photo_model.append_results([r for r in shown if r.kind == "image"])
        self.passage_model.append_results([r for r in shown if r.kind != "image"])
        self.photo_model.set_more_available(more)
        self.passage_model.set_more_available(more)
        self.photo_section.setVisible(self.photo_model.rowCount() > 0)
        self.passage_section.setVisible(self.passage_model.rowCount() > 0)
        self._update_titles()
        cards = len(self.shown_results_cards())
        self._update_count(cards)
        self.shown_changed.emit(cards)
        return len(new)

    def shown_results_cards(self) -> list[Any]:
        """What is on screen, one per file (the passages opened below a card left out)."""
        return self.photo_model.results() + self.passage_model.results()

    # -- browsing the library -----------------------------------------------------------

    def start_browsing(self, photos: bool, passages: bool, title: str) -> None:
        """Show the library in time order, empty until pages arrive; which sections may have any."""
        self._all = []
        self.browsing = True
        self._pending_jump = None
        self._months = []
        self.photo_view.set_grouped(True)
        self.photo_model.grouped = True
        self._set_shown([])
        self.photo_model.set_months([])
        self.month_list.clear()
        self.month_list.show()
        self.photo_section.setVisible(photos)
        self.passage_section.setVisible(passages)
        for widget in (self.relevance_label, self.relevance_slider, self.threshold_label, self.show_hidden_button):
            widget.hide()
        self.count_label.setText(title)
        self.stack.setCurrentIndex(1)

    def _leave_browsing(self) -> None:
        if not self.browsing:
            return
        self.browsing = False
        self._pending_jump = None
        self.photo_view.set_grouped(False)
        self.photo_model.grouped = False
        self.month_list.hide()
        for widget in (self.relevance_label, self.relevance_slider, self.threshold_label):
            widget.show()

    def add_page(self, section: str, results: Sequence[Any], more: bool) -> None:
        """Browsing: the next page of ``section`` ("photos" or "passages"); ``more``: another follows."""
        if not self.browsing:
            return
        model = self.photo_model if section == "photos" else self.passage_model
        self._all.extend(results)
        model.append_results(results)
        model.set_more_available(more)
        self._update_titles(browsing=True)
        self._balance()
        if section == "photos" and self._pending_jump is not None:
            self.jump_to_month(*self._pending_jump)

    def set_months(self, months: Sequence[tuple[int, int, int]]) -> None:
        """Browsing: the (year, month, photos) of every month with photos, newest first (the jump list)."""
        self._months = list(months)
        self.photo_model.set_months(months)
        self.month_list.clear()
        years: dict[int, QTreeWidgetItem] = {}
        for year, month, count in months:
            parent = years.get(year)
            if parent is None:
                parent = years[year] = QTreeWidgetItem(self.month_list, [str(year)])
                parent.setData(0, Qt.ItemDataRole.UserRole, (year, 0))
                font = parent.font(0)
                font.setWeight(QFont.Weight.DemiBold)
                parent.setFont(0, font)
            child = QTreeWidgetItem(parent, [f"{MONTHS[month - 1]} · {count}"])
            child.setData(0, Qt.ItemDataRole.UserRole, (year, month))
            child.setToolTip(0, f"{MONTHS[month - 1]} {year}: {count} {'photo' if count == 1 else 'photos'}")
        self.month_list.expandAll()
        self._update_titles(browsing=True)

    def months(self) -> list[tuple[int, int, int]]:
        return list(self._months)

    def _month_chosen(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        year, month = item.data(0, Qt.ItemDataRole.UserRole)
        if not month:  # a year: its newest month
            month = max((m for y, m, _ in self._months if y == year), default=0)
        if month:
            self.jump_to_month(year, month)

    def jump_to_month(self, year: int, month: int) -> bool:
        """Scroll the photos to a month's title; False when its photos must load first (they are asked for)."""
        row = self.photo_model.header_row(year, month)
        if row >= 0:
            self._pending_jump = None
            self.photo_view.lay_out_now()
            self.photo_view.scrollTo(self.photo_model.index(row), QAbstractItemView.ScrollHint.PositionAtTop)
            self._photos_scrolled()
            return True
        if not self.photo_model.more_available():
            self._pending_jump = None
            return False
        self._pending_jump = (year, month)
        # Every photo of the newer months and of this one comes first.
        self.photos_needed.emit(sum(n for y, m, n in self._months if (y, m) >= (year, month)))
        return False

    def _photos_scrolled(self, _value: int = 0) -> None:
        """Browsing: mark the month at the top of the photos in the jump list."""
        if not self.browsing:
            return
        index = self.photo_view.indexAt(QPoint(8, 8))
        if not index.isValid():
            return
        row = index.row()
        while row >= 0 and self.photo_model.data(self.photo_model.index(row), HeaderRole) is None:
            row -= 1
        header = self.photo_model.data(self.photo_model.index(row), HeaderRole) if row >= 0 else None
        if header is None:
            return
        found = self.month_list.findItems(
            f"{MONTHS[header.month - 1]} · ", Qt.MatchFlag.MatchStartsWith | Qt.MatchFlag.MatchRecursive
        )
        for item in found:
            if item.data(0, Qt.ItemDataRole.UserRole) == header.key:
                with_signals = self.month_list.blockSignals(True)
                self.month_list.setCurrentItem(item)
                self.month_list.scrollToItem(item)
                self.month_list.blockSignals(with_signals)
                self.month_shown.emit(*header.key)
                break

    def show_empty(self, message: str, action: QAction | None = None) -> None:
        """Clear the results and show ``message`` in their place (with a button for ``action``)."""
        self._leave_browsing()
        self._all = []
        self._set_shown([])
        self.empty_label.setText(message)
        if action is not None:
            self.empty_button.setDefaultAction(action)
        self.empty_button.setVisible(action is not None)
        self.stack.setCurrentWidget(self.empty_page)

    def showing_empty(self) -> bool:
        """Whether the empty state (a message instead of results) is on screen."""
        return self.stack.currentWidget() is self.empty_page

    def all_results(self) -> list[Any]:
        return list(self._all)

    def shown_results(self) -> list[Any]:
        """What is on screen, photos first, in rank order within each list (opened passages included)."""
        return self.photo_model.results() + self.passage_model.shown_rows()

    def shown_paths(self) -> list[str]:
        return [r.path for r in self.shown_results()]

    def photo_paths(self) -> list[str]:
        return [r.path for r in self.photo_model.results()]

    def passage_paths(self) -> list[str]:
        return [r.path for r in self.passage_model.results()]

    # -- the relevance threshold ------------------------------------------------------

    def _judged(self) -> bool:
        """Whether any current result has a calibrated relevance (otherwise there is nothing to threshold)."""
        return any(getattr(r, "relevance", None) is not None for r in self._all)

    def threshold(self) -> float | None:
        """The calibrated relevance below which results are hidden (None: nothing is hidden)."""
        value = self.relevance_slider.value()
        if value <= 0 or not self._judged():
            return None
        return value / self.SLIDER_STEPS

    def set_threshold(self, relevance: float | None) -> None:
        """Move the slider to hide results less relevant than ``relevance`` (0-1; None or 0: show all)."""
        value = 0 if relevance is None else round(max(0.0, min(1.0, relevance)) * self.SLIDER_STEPS)
        self.relevance_slider.setValue(value)

    def _configure_slider(self) -> None:
        usable = self._judged()
        self.relevance_slider.setEnabled(usable)
        self.relevance_label.setEnabled(usable)

    def _passes(self, result: Any, threshold: float | None) -> bool:
        relevance = getattr(result, "relevance", None)
        if threshold is None or relevance is None or result.supported_by_words:
            return True
        return relevance >= threshold - 1e-9

    def _apply_threshold(self, _value: int = 0) -> None:
        if self.browsing:
            return  # the library in time order has no relevance to judge
        threshold = self.threshold()
        shown = [r for r in self._all if self._passes(r, threshold)]
        self._update_threshold_label(threshold)
        self._set_shown(shown)
        self._update_count(len(shown))
        if not self._all:
            return
        self.stack.setCurrentIndex(1)

    def _update_count(self, shown: int) -> None:
        if self.browsing:
            return
        hidden = len(self._all) - shown
        total = len(self._all)
        noun = "result" if total == 1 else "results"
        self.show_hidden_button.setVisible(bool(hidden))
        if hidden:
            weaker = "weaker result" if hidden == 1 else "weaker results"
            self.count_label.setText(f"{shown} {'result' if shown == 1 else 'results'} ({hidden} {weaker} hidden)")
        else:
            self.count_label.setText(f"{total} {noun}")
        if self._all and not shown:
            # The header (and its slider) stays on screen so the person can show them anyway.
            self.count_label.setText(f"Nothing matched closely ({hidden} weaker {noun} hidden)")

    def _update_threshold_label(self, threshold: float | None) -> None:
        self.threshold_label.setText("all" if threshold is None else f"≥ {threshold:.2f}")

    def _set_shown(self, shown: list[Any]) -> None:
        keep = {r.item_id for r in self.selected_results()}
        current_id = self._current.item_id if self._current is not None else None
        photos = [r for r in shown if r.kind == "image"]
        passages = [r for r in shown if r.kind != "image"]
        self._clearing = True
        try:
            self.photo_model.set_results(photos)
            self.passage_model.set_results(passages)
        finally:
            self._clearing = False
        if not self.browsing:
            self.photo_section.setVisible(bool(photos))
            self.passage_section.setVisible(bool(passages))
        self._update_titles(browsing=self.browsing)
        self._user_split = False
        self._balance()
        self.select_items(keep, current_id, emit=False)
        still = self._find(current_id) if current_id is not None else None
        if still is None and self._current is not None:
            self._current = None
            self.current_changed.emit(None)
        elif still is not None:
            replaced = still is not self._current
            self._current = still
            if replaced:
                self.current_updated.emit(still)
        self.shown_changed.emit(len(shown))

    def _update_titles(self, *, browsing: bool = False) -> None:
        photos, passages = self.photo_model.results(), self.passage_model.results()
        noun = "Documents, recordings and videos" if any(r.kind == "video" for r in passages) else None
        if browsing:
            self.photo_title.setText("Photos · newest first")
            self.passage_title.setText(f"{noun or 'Documents and recordings'} · newest first")
        else:
            self.photo_title.setText(f"Photos · {len(photos)}")
            self.passage_title.setText(f"{noun or 'Documents and recordings'} · {len(passages)}")

    def _balance(self) -> None:
        """Give the photo grid the rows it needs (up to about 60 %), the cards the rest."""
        photos, passages = self.photo_model.rowCount(), self.passage_model.rowCount()
        if not photos or not passages or self._user_split:
            return
        total = max(200, self.splitter.height())
        if self.browsing:
            # The photos go on as they are scrolled: they get the room the cards do not need (at least 60 %).
            cards = sum(
                self.passage_view.sizeHintForIndex(self.passage_model.index(row)).height()
                for row in range(min(passages, 8))
            )
            top = max(int(total * 0.6), total - cards - self.passage_title.sizeHint().height() - 12)
            self.splitter.setSizes([top, total - top])
            return
        grid = self.photo_view.gridSize()
        per_row = max(1, (self.photo_view.viewport().width() or self.width()) // grid.width())
        rows = -(-photos // per_row)
        needed = rows * grid.height() + self.photo_title.sizeHint().height() + 12
        top = min(needed, int(total * 0.6))
        self.splitter.setSizes([top, total - top])

    # -- selection --------------------------------------------------------------------

    def _find(self, item_id: int) -> Any:
        for result in self.shown_results():
            if result.item_id == item_id:
                return result
        return None

    def selected_results(self) -> list[Any]:
        """The selected results (photos first), in list order."""
        chosen = []
        for view, model in ((self.photo_view, self.photo_model), (self.passage_view, self.passage_model)):
            rows = sorted(index.row() for index in view.selectionModel().selectedRows())
            chosen += [r for r in (model.result(row) for row in rows) if r is not None]  # never a month's title
        return chosen

    def current_result(self) -> Any:
        return self._current

    def action_targets(self) -> list[Any]:
        """What an action applies to: the selection, or else the current result."""
        selected = self.selected_results()
        if selected:
            return selected
        return [self._current] if self._current is not None else []

    def select_items(
        self, item_ids: set[int] | Sequence[int], current: int | None = None, *, emit: bool = True
    ) -> None:
        """Select the shown results with these item ids; make ``current`` the current one."""
        wanted = set(item_ids)
        for view, model in ((self.photo_view, self.photo_model), (self.passage_view, self.passage_model)):
            selection = QItemSelection()
            current_index = QModelIndex()
            for row in range(model.rowCount()):
                result = model.result(row)
                if result is None:
                    continue
                if result.item_id in wanted:
                    index = model.index(row)
                    selection.select(index, index)
                if result.item_id == current:
                    current_index = model.index(row)
            selection_model = view.selectionModel()
            self._clearing = True  # one selection spanning both lists: neither clears the other
            try:
                selection_model.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
                if current_index.isValid():
                    selection_model.setCurrentIndex(current_index, QItemSelectionModel.SelectionFlag.NoUpdate)
                    view.scrollTo(current_index)
            finally:
                self._clearing = False
        if emit:
            self._current = self._find(current) if current is not None else None
            self.current_changed.emit(self._current)
            self.selection_changed.emit()

    def select_paths(self, paths: Sequence[str]) -> None:
        """Select the shown results of these files (tests and "select all of these")."""
        wanted = set(paths)
        ids = [r.item_id for r in self.shown_results() if r.path in wanted]
        self.select_items(ids, ids[0] if ids else None)

    def _selection_changed(self, view: QListView) -> None:
        if self._clearing:
            return
        extend = QGuiApplication.keyboardModifiers() & (
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        )
        if not extend and view.selectionModel().hasSelection():
            other = self.passage_view if view is self.photo_view else self.photo_view
            self._clearing = True
            try:
                other.selectionModel().clearSelection()
            finally:
                self._clearing = False
        self.selection_changed.emit()

    def _current_moved(self, view: QListView, index: QModelIndex) -> None:
        if self._clearing or not index.isValid():
            return
        result = index.data(ResultRole)
        if result is not self._current:
            self._current = result
            self.current_changed.emit(result)

    # -- keys and menus -------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            isinstance(event, QKeyEvent)
            and event.type() == QEvent.Type.KeyPress
            and watched in (self.photo_view, self.passage_view)
        ):
            key = event.key()
            modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not modifiers and self._current is not None:
                self.open_requested.emit(self._current)
                return True
            if key == Qt.Key.Key_Space and not modifiers and self._current is not None:
                self.preview_requested.emit(self._current)
                return True
            if (
                watched is self.passage_view
                and not modifiers
                and key in (Qt.Key.Key_Right, Qt.Key.Key_Left, Qt.Key.Key_Plus, Qt.Key.Key_Minus)
            ):
                # Right (or +) opens a card's other passages, Left (or -) closes them.
                row = self.passage_view.currentIndex().row()
                expanded = (
                    bool(self.passage_model.data(self.passage_model.index(row), ExpandedRole)) if row >= 0 else False
                )
                opening = key in (Qt.Key.Key_Right, Qt.Key.Key_Plus)
                if row >= 0 and opening != expanded and self.passage_model.toggle_more(row):
                    self._balance()
                    return True
        return super().eventFilter(watched, event)

    def _context_menu(self, view: QListView, pos: QPoint) -> None:
        index = view.indexAt(pos)
        if index.isValid() and not view.selectionModel().isSelected(index):
            view.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        if index.isValid() or self.selected_results():
            self.context_menu_requested.emit(view.viewport().mapToGlobal(pos))

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._balance()


__all__ = [
    "CardDelegate",
    "PhotoDelegate",
    "PhotoModel",
    "ResultListModel",
    "ResultRole",
    "ResultsView",
    "ThumbnailLoader",
    "card_place_text",
    "read_scaled_image",
    "read_thumbnail",
    "result_tooltip",
]
