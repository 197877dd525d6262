"""Dates written in a search query become time filters.

``extract_dates("the kids at the beach last summer", now)`` returns the
semantic text ``"the kids at the beach"`` and one :class:`DatePhrase` for
``"last summer"`` (1 Jun – 1 Sep of the most recent finished summer), so the
search filters by time, embeds only the words that describe content, and the
app shows the date as a removable chip.  English and Korean are understood.
Pure standard library; no Qt, no third-party parser.

Every bound is a naive local ``datetime``; ``after`` is inclusive, ``before``
exclusive, ``None`` means open.  Labels are short English chip texts built
from the resolved range (``"2023"``, ``"Mar 2024"``, ``"4 May 2023"``,
``"16–22 Nov 2026"``, ``"Summer 2025"``, ``"since 1 Mar 2026"``), the same for
Korean phrases, so a chip always shows what the filter really is.

How it works: at every place a word starts, *cores* (one date expression:
``2023``, ``March 2024``, ``last summer``, ``작년``, ``3월 5일`` ...) are
matched; a phrase is an optional English lead (``in``, ``since``,
``between`` ...), one core or two joined ones (``2019 to 2021``,
``2019년부터 2021년까지``), an optional Korean marker (``부터``, ``이후``,
``까지`` ...) or English ``onwards``, and an optional Korean particle
(``에``, ``의`` ...).  Of all candidate phrases the longest win, without
overlapping.

Decisions on ambiguous input (the rule: when unsure, leave the words alone):

* A 4-digit number 1900–2099 standing alone is a year ("2023", "photos 2023").
  It is not one when glued to other characters ("IMG_2023.jpg", "#2023",
  "$2000", "2023.5", "2023-ish"), after words that number things
  ("room 2023", "page 1999", "flight 2020") or before a unit
  ("2000 km", "1920 x 1080") — unless a preposition says so ("in 2023").
* A full month name is a month on its own ("photos december", "March"),
  except: "may" (the verb: "what may happen") and the abbreviations ("Jan"
  is a name, "mar" a verb) need a year, a day ("May 4"), a preposition
  (in/on/during/since/after/before/until/through) or a range whose other end
  has a year ("Jan–Mar 2023"); a bare "march" followed by a word that makes it
  the verb ("march to the sea", "kids march in the parade") is not a month;
  "April", "June", "August" (first names) are not months after
  from/of/for/with/to/by/and/dear/... ("a letter from June", "dinner with
  june"), but are in "in June", "June 2023", "from April to June".
* A month followed by "of" without a year is not a date ("march of the
  penguins"); "March of 2024" is.  A month alone after "of" is not one either
  ("the ides of March", "last week of march").
* A month (or month and day) without a year is the most recent one that has
  started: "in March" in Nov 2026 → Mar 2026, in Feb 2026 → Mar 2025;
  "May 4" → the latest 4 May on or before today.
* Seasons (Northern hemisphere): spring Mar–May, summer Jun–Aug,
  autumn/fall Sep–Nov, winter Dec–Feb.  A season's year is the year it
  starts in ("winter 2023" = Dec 2023 – Feb 2024, likewise "2023년 겨울",
  "작년 겨울").
* "last summer" / "지난 여름" / "past summer" = the most recent summer that has
  ended before now (in Nov 2026: Jun–Aug 2026; "last autumn" in Nov 2026:
  Sep–Nov 2025).  "this summer" = the one going on now, else the one that
  starts this year.  A season word alone ("summer dress", "in summer",
  "spring water", "waterfall", "fall down") is never a date.
* "last"/"this"/"past" forms are not taken after a determiner ("the last
  summer of childhood", "my last week at work").  "last week" is the previous
  calendar week (Monday 00:00 to Monday 00:00); "this week" is the current
  one; "the last week" / "the past week" / "past week" are rolling windows.
* "past/last N days|weeks|months|years" is a rolling window from now minus N
  units; its upper bound is left open (None) rather than ``now``: nothing can
  be newer than now, and cameras with fast clocks are not cut off.
* "recently" / "lately" / "최근" = the past 30 days (rolling, open upper bound).
* "N days/weeks/months/years ago" (and "N일/주/달/개월/년 전") is that whole
  calendar day / Monday-week / month / year.
* "on Monday" / "last Monday" / "지난 월요일" = the most recent such day before
  today (never today).  A weekday alone ("monday meeting") is not a date.
* "X and Y" / "X or Y" / "between X and Y" / "from X to Y" / "X–Y" give the
  span covering both (one filter holds one range; the span never drops a
  wanted item): "2019 and 2021" → 2019–2021.  A range end without a year
  takes the other end's year ("from March to June 2021").
* "since X" starts at X's start (inclusive), "after X" after X's end,
  "before X" ends at X's start, "until/through X" ends at X's end (inclusive).
  Korean: 부터/이후/이래 = since, 후 = after, 이전/전/전까지 = before, 까지 = until.
* "March last year", "May 4 this year", "summer last year" put the month, day or
  season in that calendar year; "earlier this year" = "this year".
* Decades: "1990s", "the 1990s", "the 90s", "'90s" ("90s" alone, "her 90s": no).
* "now" / "present" only end a range: "from 2019 to now" runs to the end of today.
* "내년", "tomorrow", "next ..." (the future) are not taken: they are more
  likely content ("내년 계획") than a filter on existing files.
* Two-digit years ("'23", "23년") and numeric d/m orders ("05/04/2023") are
  ambiguous and not taken; ISO "2023-05-04", "2023/05/04", "2023.5.4",
  "2023-05" (year-month) are.
* A Korean particle glued to a phrase goes with it ("작년에", "2023년의",
  "지난주에는"), so "작년에 찍은 바다 사진" → "찍은 바다 사진".
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

__all__ = ["DatePhrase", "combine", "extract_dates"]


@dataclass(frozen=True)
class DatePhrase:
    """One date phrase found in a query, with the time range it means."""

    text: str  # the phrase as typed, including a leading preposition removed with it
    start: int  # query[start:end] == text
    end: int
    after: datetime | None  # inclusive lower bound (naive local time); None = open
    before: datetime | None  # exclusive upper bound; None = open
    label: str  # short human label for a chip

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "after": self.after.isoformat() if self.after is not None else None,
            "before": self.before.isoformat() if self.before is not None else None,
            "label": self.label,
        }


def combine(phrases: Iterable[DatePhrase]) -> tuple[datetime | None, datetime | None]:
    """The intersection of the phrases' ranges: the latest ``after`` and the earliest ``before``.

    The result may be empty (after >= before) when the phrases contradict each other.
    """
    after: datetime | None = None
    before: datetime | None = None
    for p in phrases:
        if p.after is not None and (after is None or p.after > after):
            after = p.after
        if p.before is not None and (before is None or p.before < before):
            before = p.before
    return after, before


# --------------------------------------------------------------------------- calendar helpers

_MON_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WD_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MIN_YEAR, _MAX_YEAR = 1900, 2099


def _add_months(year: int, month: int, k: int) -> tuple[int, int]:
    t = year * 12 + (month - 1) + k
    return t // 12, t % 12 + 1


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1)


def _shift_months(dt: datetime, k: int) -> datetime:
    y, m = _add_months(dt.year, dt.month, k)
    return dt.replace(year=y, month=m, day=min(dt.day, calendar.monthrange(y, m)[1]))


def _day_label(d: date | datetime) -> str:
    return f"{d.day} {_MON_ABBR[d.month - 1]} {d.year}"


def _span_days_label(first: date | datetime, last: date | datetime) -> str:
    """'16–22 Nov 2026', '30 Nov – 6 Dec 2026', '28 Dec 2026 – 3 Jan 2027' (both days inclusive)."""
    if (first.year, first.month) == (last.year, last.month):
        if first.day == last.day:
            return _day_label(first)
        return f"{first.day}–{last.day} {_MON_ABBR[first.month - 1]} {first.year}"
    if first.year == last.year:
        return f"{first.day} {_MON_ABBR[first.month - 1]} – {_day_label(last)}"
    return f"{_day_label(first)} – {_day_label(last)}"


# --------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class _Range:
    """What one core means: a closed range (or a rolling one with before=None)."""

    after: datetime
    before: datetime | None
    label: str
    kind: str  # year decade month day week season rolling now
    year: int | None = None  # the year written in the phrase, if any
    redo: Callable[[int], _Range | None] | None = field(default=None, compare=False)  # same, in another year
    needs_prep: bool = False  # ambiguous alone: needs a preposition, a range, or a year nearby
    guard_det: bool = False  # "last/this ..." forms: not after "the", "my", ...
    number_like: bool = False  # a bare 4-digit number
    only_as_end: bool = False  # "now": only as the end of a range
    name_like: bool = False  # "June" alone: also a first name
    start: int = 0
    end: int = 0


def _year_range(y: int, **kw) -> _Range | None:
    if not _MIN_YEAR <= y <= _MAX_YEAR:
        return None
    return _Range(datetime(y, 1, 1), datetime(y + 1, 1, 1), str(y), "year", **kw)


def _month_range(y: int, m: int, **kw) -> _Range | None:
    if not (_MIN_YEAR <= y <= _MAX_YEAR and 1 <= m <= 12):
        return None
    ny, nm = _add_months(y, m, 1)
    return _Range(_month_start(y, m), _month_start(ny, nm), f"{_MON_ABBR[m - 1]} {y}", "month", **kw)


def _day_range(d: date, label: str | None = None, **kw) -> _Range:
    start = datetime(d.year, d.month, d.day)
    return _Range(start, start + timedelta(days=1), label or _day_label(d), "day", **kw)


def _ymd_range(y: int, m: int, d: int, **kw) -> _Range | None:
    if not _MIN_YEAR <= y <= _MAX_YEAR:
        return None
    try:
        return _day_range(date(y, m, d), **kw)
    except ValueError:
        return None


def _week_range(monday: date, **kw) -> _Range:
    start = datetime(monday.year, monday.month, monday.day)
    return _Range(start, start + timedelta(days=7), _span_days_label(monday, monday + timedelta(days=6)), "week", **kw)


def _weekend_range(saturday: date, **kw) -> _Range:
    start = datetime(saturday.year, saturday.month, saturday.day)
    return _Range(
        start, start + timedelta(days=2), _span_days_label(saturday, saturday + timedelta(days=1)), "week", **kw
    )


def _rolling(now: datetime, n: int, unit: str, label: str | None = None, **kw) -> _Range | None:
    try:
        if unit == "day":
            after = now - timedelta(days=n)
        elif unit == "week":
            after = now - timedelta(weeks=n)
        elif unit == "month":
            after = _shift_months(now, -n)
        else:
            after = _shift_months(now, -12 * n)
    except (OverflowError, ValueError):
        return None
    if after.year < _MIN_YEAR:
        return None
    if label is None:
        label = f"Past {unit}" if n == 1 else f"Past {n} {unit}s"
    return _Range(after, None, label, "rolling", **kw)


def _ago(now: datetime, n: int, unit: str, **kw) -> _Range | None:
    today = now.date()
    try:
        if unit == "day":
            return _day_range(today - timedelta(days=n), **kw)
        if unit == "week":
            d = today - timedelta(weeks=n)
            return _week_range(d - timedelta(days=d.weekday()), **kw)
        if unit == "month":
            y, m = _add_months(today.year, today.month, -n)
            return _month_range(y, m, **kw)
        return _year_range(today.year - n, **kw)
    except (OverflowError, ValueError):
        return None


_SEASON_START = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
_SEASON_KO = {"봄": "spring", "여름": "summer", "가을": "autumn", "겨울": "winter"}


def _season_range(season: str, y: int, **kw) -> _Range | None:
    """The season that starts in year ``y`` (winter ``y`` = Dec y – Feb y+1)."""
    if not _MIN_YEAR <= y <= _MAX_YEAR:
        return None
    sm = _SEASON_START[season]
    ey, em = _add_months(y, sm, 3)
    name = season.capitalize()
    label = f"{name} {y}–{(y + 1) % 100:02d}" if season == "winter" else f"{name} {y}"
    return _Range(_month_start(y, sm), _month_start(ey, em), label, "season", **kw)


def _last_season(season: str, now: datetime, **kw) -> _Range | None:
    """The most recent such season that has ended by now."""
    for y in (now.year, now.year - 1, now.year - 2):
        r = _season_range(season, y, **kw)
        if r is not None and r.before is not None and r.before <= now:
            return r
    return None


def _this_season(season: str, now: datetime, **kw) -> _Range | None:
    """The season going on now, else the one that starts this year."""
    for y in (now.year - 1, now.year):
        r = _season_range(season, y, **kw)
        if r is not None and r.before is not None and r.after <= now < r.before:
            return r
    return _season_range(season, now.year, **kw)


def _recent_month(m: int, now: datetime, **kw) -> _Range | None:
    """The most recent month ``m`` that has started, re-resolvable in another year."""
    if not 1 <= m <= 12:
        return None
    y = now.year if now.month >= m else now.year - 1
    return _month_range(y, m, redo=lambda yy: _month_range(yy, m), **kw)


def _recent_day(m: int, d: int, now: datetime, **kw) -> _Range | None:
    """The most recent ``d``/``m`` on or before today, re-resolvable in another year."""
    if not (1 <= m <= 12 and 1 <= d <= 31):
        return None
    today = now.date()
    y = today.year if (m, d) <= (today.month, today.day) else today.year - 1
    for yy in range(y, y - 9, -1):  # 29 Feb: go back to a leap year
        r = _ymd_range(yy, m, d, redo=lambda z: _ymd_range(z, m, d), **kw)
        if r is not None:
            return r
    return None


def _weekday_before_today(wd: int, now: datetime, **kw) -> _Range:
    today = now.date()
    back = (today.weekday() - wd) % 7 or 7
    d = today - timedelta(days=back)
    return _day_range(d, f"{_WD_ABBR[d.weekday()]} {_day_label(d)}", **kw)


def _weekday_in_week(wd: int, monday: date, **kw) -> _Range:
    d = monday + timedelta(days=wd)
    return _day_range(d, f"{_WD_ABBR[d.weekday()]} {_day_label(d)}", **kw)


def _this_monday(now: datetime) -> date:
    today = now.date()
    return today - timedelta(days=today.weekday())


# --------------------------------------------------------------------------- core patterns

_MONTHS = {
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sept": 9,
    "sep": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}
# "may" (the verb) and the abbreviations ("Jan" is a name, "mar" a verb): not a month on their own.
_AMBIGUOUS_MONTHS = {"may", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
# After these words a bare "march" reads as the verb; with a preposition in front it is still the month.
_MARCH_VERB_NEXT = {
    "on",
    "in",
    "into",
    "to",
    "through",
    "across",
    "down",
    "up",
    "along",
    "past",
    "around",
    "with",
    "for",
    "the",
    "a",
    "an",
    "forward",
    "forwards",
    "away",
    "off",
    "out",
    "together",
    "band",
    "bands",
}
# Months that are also first names: alone, not after "from"/"of"/"for" or words that go before a person.
_NAME_MONTHS = {"april", "june", "august"}
_BEFORE_A_PERSON = {
    "from",
    "of",
    "for",
    "with",
    "to",
    "by",
    "and",
    "&",
    "dear",
    "hi",
    "hello",
    "love",
    "met",
    "meet",
    "call",
    "called",
    "text",
    "email",
    "ask",
    "tell",
    "told",
    "aunt",
    "uncle",
    "grandma",
    "grandpa",
    "cousin",
    "friend",
}
_WEEKDAYS = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}
_KO_WEEKDAYS = {"월": 0, "화": 1, "수": 2, "목": 3, "금": 4, "토": 5, "일": 6}
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
_KO_NUMBER_WORDS = {"한": 1, "두": 2, "세": 3, "네": 4, "다섯": 5, "여섯": 6, "일곱": 7, "여덟": 8, "아홉": 9, "열": 10}
_KO_UNITS = {"일": "day", "주": "week", "주일": "week", "달": "month", "개월": "month", "년": "year", "해": "year"}


def _alt(words: Iterable[str]) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_END = r"(?![A-Za-z0-9_])"  # a core ends where a latin word/number ends (Korean particles may follow)
_MON = rf"(?P<mon>{_alt(_MONTHS)})(?:\.(?=\s*\d))?"
_ORD = r"(?:st|nd|rd|th)?"
_SEASON = r"(?P<season>spring|summer|autumn|fall|winter)"
_WD = rf"(?P<wd>{_alt(_WEEKDAYS)})"
_NUM = rf"(?P<n>\d{{1,4}}|{_alt(_NUMBER_WORDS)})"
_KO_SEASON = r"(?P<kseason>봄|여름|가을|겨울)"
_KO_NUM = r"(?P<n>\d{1,3})"
_KO_MD = r"(?:\s*(?P<m>\d{1,2})\s*월(?:\s*(?P<d>\d{1,2})\s*일)?)"

_Handler = Callable[[re.Match, datetime], "_Range | None"]
_CORES: list[tuple[re.Pattern, _Handler]] = []


def _core(pattern: str) -> Callable[[_Handler], _Handler]:
    def register(fn: _Handler) -> _Handler:
        _CORES.append((re.compile(pattern, re.IGNORECASE), fn))
        return fn

    return register


def _num(text: str) -> int:
    t = text.lower()
    if t in ("a", "an"):
        return 1
    return _NUMBER_WORDS.get(t) or _KO_NUMBER_WORDS.get(t) or int(t)


# ---- English


@_core(rf"(?P<y>\d{{4}})(?P<s>[-/.])(?P<m>\d{{1,2}})(?P=s)(?P<d>\d{{1,2}}){_END}")
def _iso_day(m, now):
    return _ymd_range(int(m["y"]), int(m["m"]), int(m["d"]), year=int(m["y"]))


@_core(rf"(?P<y>\d{{4}})(?:-(?P<m>\d{{2}})|/(?P<m2>\d{{1,2}})){_END}")
def _iso_month(m, now):
    return _month_range(int(m["y"]), int(m["m"] or m["m2"]), year=int(m["y"]))


@_core(rf"{_MON}\s+(?P<d>\d{{1,2}}){_ORD},?\s+(?P<y>\d{{4}}){_END}")
def _mdy(m, now):
    return _ymd_range(int(m["y"]), _MONTHS[m["mon"].lower()], int(m["d"]), year=int(m["y"]))


@_core(rf"(?:the\s+)?(?P<d>\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MON},?\s+(?P<y>\d{{4}}){_END}")
def _dmy(m, now):
    return _ymd_range(int(m["y"]), _MONTHS[m["mon"].lower()], int(m["d"]), year=int(m["y"]))


@_core(rf"{_MON},?\s+(?:of\s+)?(?P<y>\d{{4}}){_END}")
def _month_year(m, now):
    return _month_range(int(m["y"]), _MONTHS[m["mon"].lower()], year=int(m["y"]))


@_core(rf"{_MON}\s+(?P<d>\d{{1,2}}){_ORD}{_END}")
def _month_day(m, now):
    return _recent_day(_MONTHS[m["mon"].lower()], int(m["d"]), now)


@_core(rf"(?:the\s+)?(?P<d>\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MON}{_END}(?!\s+of\b)")
def _day_month(m, now):
    return _recent_day(_MONTHS[m["mon"].lower()], int(m["d"]), now)


@_core(rf"(?P<mon>{_alt(_MONTHS)}){_END}(?!\s+of\b)(?!['’]s\b)")
def _month_alone(m, now):
    word = m["mon"].lower()
    if _word_before(m.string, m.start()) == "of":  # "the ides of march", "last week of march"
        return None
    ambiguous = word in _AMBIGUOUS_MONTHS
    if word == "march":  # the verb: "kids march in the parade", "march to the sea"
        follow = re.match(r"\s+([a-z]+)", m.string[m.end() :], re.IGNORECASE)
        ambiguous = follow is not None and follow.group(1).lower() in _MARCH_VERB_NEXT
    return _recent_month(_MONTHS[word], now, needs_prep=ambiguous, name_like=word in _NAME_MONTHS)


@_core(rf"(?P<y>\d{{4}}){_END}")
def _bare_year(m, now):
    return _year_range(int(m["y"]), year=int(m["y"]), number_like=True)


@_core(rf"(?:the\s+)?year\s+(?P<y>\d{{4}}){_END}")
def _the_year(m, now):
    return _year_range(int(m["y"]), year=int(m["y"]))


@_core(rf"(?:the\s+)?(?P<y>\d{{3}}0)s{_END}|(?:the\s+['’]?|['’])(?P<yy>\d0)s{_END}")
def _decade(m, now):
    if m["y"]:
        y = int(m["y"])
    else:
        yy = int(m["yy"])
        y = 1900 + yy if yy >= 20 else 2000 + yy
    if not _MIN_YEAR <= y <= _MAX_YEAR - 9:
        return None
    return _Range(datetime(y, 1, 1), datetime(y + 10, 1, 1), f"{y}s", "decade")


@_core(rf"(?P<w>today|yesterday|(?:the\s+)?day\s+before\s+yesterday){_END}")
def _today(m, now):
    w = m["w"].lower()
    back = 0 if w == "today" else 1 if w == "yesterday" else 2
    return _day_range(now.date() - timedelta(days=back))


@_core(rf"(?:(?:earlier|later)\s+)?(?P<w>this|last|previous)\s+(?P<u>week|weekend|month|year){_END}(?!\s+of\b)")
def _calendar_unit(m, now):
    back = 0 if m["w"].lower() == "this" else 1
    unit = m["u"].lower()
    if unit in ("week", "weekend"):
        monday = _this_monday(now) - timedelta(weeks=back)
        if unit == "week":
            return _week_range(monday, guard_det=True)
        return _weekend_range(monday + timedelta(days=5), guard_det=True)
    if unit == "month":
        y, mo = _add_months(now.year, now.month, -back)
        return _month_range(y, mo, guard_det=True)
    return _year_range(now.year - back, guard_det=True)


@_core(rf"(?:the\s+(?:past|last)|past)\s+(?P<u>week|month|year){_END}")
def _rolling_one(m, now):
    return _rolling(now, 1, m["u"].lower(), guard_det=not m[0].lower().startswith("the"))


@_core(rf"(?:the\s+)?(?:past|last|previous)\s+{_NUM}\s+(?P<u>day|week|month|year)s?{_END}")
def _rolling_n(m, now):
    n = _num(m["n"])
    return _rolling(now, n, m["u"].lower()) if n > 0 else None


@_core(rf"(?P<n>\d{{1,4}}|an?|{_alt(_NUMBER_WORDS)})\s+(?P<u>day|week|month|year)s?\s+ago{_END}")
def _ago_en(m, now):
    return _ago(now, _num(m["n"]), m["u"].lower())


@_core(rf"(?:recently|lately){_END}")
def _recently(m, now):
    return _rolling(now, 30, "day", label="Past 30 days")


@_core(rf"(?P<w>this\s+past|this|last|past)\s+{_SEASON}{_END}(?!\s+of\b)")
def _rel_season(m, now):
    w = " ".join(m["w"].lower().split())
    season = m["season"].lower()
    if w == "this":
        return _this_season(season, now, guard_det=True)
    return _last_season(season, now, guard_det=True)


@_core(
    rf"{_MON}(?:\s+(?P<d>\d{{1,2}}){_ORD})?,?\s+(?:of\s+)?(?P<w>last|this)\s+year{_END}"
    rf"|(?:the\s+)?(?P<d2>\d{{1,2}}){_ORD}\s+(?:of\s+)?(?P<mon2>{_alt(_MONTHS)}),?\s+(?:of\s+)?(?P<w2>last|this)\s+year{_END}"
)
def _month_rel_year(m, now):
    y = now.year - (1 if (m["w"] or m["w2"]).lower() == "last" else 0)
    month = _MONTHS[(m["mon"] or m["mon2"]).lower()]
    day = m["d"] or m["d2"]
    return _ymd_range(y, month, int(day)) if day else _month_range(y, month)


@_core(rf"(?:the\s+)?{_SEASON}\s+(?:of\s+)?(?P<w>last|this)\s+year{_END}")
def _season_rel_year(m, now):
    return _season_range(m["season"].lower(), now.year - (1 if m["w"].lower() == "last" else 0))


@_core(rf"(?:the\s+)?{_SEASON}\s+(?:of\s+)?(?P<y>\d{{4}}){_END}")
def _season_year(m, now):
    return _season_range(m["season"].lower(), int(m["y"]), year=int(m["y"]))


@_core(rf"(?:last|this\s+past|past)\s+{_WD}{_END}")
def _last_weekday(m, now):
    return _weekday_before_today(_WEEKDAYS[m["wd"].lower()], now, guard_det=True)


@_core(rf"{_WD}{_END}(?!['’]s\b)")
def _weekday_alone(m, now):
    return _weekday_before_today(_WEEKDAYS[m["wd"].lower()], now, needs_prep=True)


@_core(rf"(?:now|(?:the\s+)?present(?:\s+day)?){_END}")
def _now(m, now):
    return _day_range(now.date(), only_as_end=True)


# ---- Korean


@_core(rf"(?P<y>\d{{4}})\s*년(?:도)?{_KO_MD}?{_END}")
def _ko_ymd(m, now):
    y = int(m["y"])
    if m["d"]:
        return _ymd_range(y, int(m["m"]), int(m["d"]), year=y)
    if m["m"]:
        return _month_range(y, int(m["m"]), year=y)
    return _year_range(y, year=y)


@_core(rf"(?P<y>\d{{4}})\s*년(?:도)?\s*{_KO_SEASON}{_END}")
def _ko_year_season(m, now):
    return _season_range(_SEASON_KO[m["kseason"]], int(m["y"]), year=int(m["y"]))


@_core(rf"(?P<m>\d{{1,2}})\s*월(?:\s*(?P<d>\d{{1,2}})\s*일)?{_END}")
def _ko_md(m, now):
    if m["d"]:
        return _recent_day(int(m["m"]), int(m["d"]), now)
    return _recent_month(int(m["m"]), now)


@_core(rf"(?P<r>재작년|지지난\s?해|작년|지난\s?해|올해|금년)(?:{_KO_MD}|\s*{_KO_SEASON})?{_END}")
def _ko_rel_year(m, now):
    back = 2 if m["r"].startswith(("재", "지지")) else 0 if m["r"] in ("올해", "금년") else 1
    y = now.year - back
    if m["kseason"]:
        return _season_range(_SEASON_KO[m["kseason"]], y)
    if m["d"]:
        return _ymd_range(y, int(m["m"]), int(m["d"]))
    if m["m"]:
        return _month_range(y, int(m["m"]))
    return _year_range(y)


@_core(rf"(?P<r>지난|저번|이번|올)\s*{_KO_SEASON}{_END}")
def _ko_rel_season(m, now):
    season = _SEASON_KO[m["kseason"]]
    if m["r"] in ("이번", "올"):
        return _this_season(season, now)
    return _last_season(season, now)


@_core(rf"(?:(?P<r>지지난|지난|저번|이번)\s*(?P<u>주말|주|달)|(?P<this_month>이달)){_END}")
def _ko_week_month(m, now):
    back = 0 if m["this_month"] or m["r"] == "이번" else 2 if m["r"] == "지지난" else 1
    unit = "달" if m["this_month"] else m["u"]
    if unit == "달":
        y, mo = _add_months(now.year, now.month, -back)
        return _month_range(y, mo)
    monday = _this_monday(now) - timedelta(weeks=back)
    if unit == "주말":
        return _weekend_range(monday + timedelta(days=5))
    return _week_range(monday)


@_core(rf"(?P<w>오늘|어제|어저께|그저께|그제){_END}")
def _ko_day(m, now):
    back = {"오늘": 0, "어제": 1, "어저께": 1, "그저께": 2, "그제": 2}[m["w"]]
    return _day_range(now.date() - timedelta(days=back))


@_core(
    rf"(?:{_KO_NUM}\s*(?P<u>일|주일|주|달|개월|년)|(?P<kn>{_alt(_KO_NUMBER_WORDS)})\s*(?P<ku>주|달|해)"
    rf"|(?P<sp>하루|이틀|사흘|나흘|일주일|보름))\s*전{_END}"
)
def _ko_ago(m, now):
    if m["sp"]:
        days = {"하루": 1, "이틀": 2, "사흘": 3, "나흘": 4, "보름": 15}
        if m["sp"] == "일주일":
            return _ago(now, 1, "week")
        return _ago(now, days[m["sp"]], "day")
    if m["kn"]:
        return _ago(now, _num(m["kn"]), _KO_UNITS[m["ku"]])
    return _ago(now, int(m["n"]), _KO_UNITS[m["u"]])


@_core(
    rf"(?:최근|지난)\s*(?:{_KO_NUM}\s*(?P<u>일|주일|주|달|개월|년)|(?P<kn>{_alt(_KO_NUMBER_WORDS)})\s*(?P<ku>주|달|해)"
    rf"|(?P<sp>일주일))(?:\s*(?:간|동안))?{_END}"
)
def _ko_rolling(m, now):
    if m["sp"]:
        return _rolling(now, 1, "week")
    if m["kn"]:
        return _rolling(now, _num(m["kn"]), _KO_UNITS[m["ku"]])
    n = int(m["n"])
    return _rolling(now, n, _KO_UNITS[m["u"]]) if n > 0 else None


@_core(rf"최근{_END}")
def _ko_recently(m, now):
    return _rolling(now, 30, "day", label="Past 30 days")


@_core(rf"(?P<r>지난\s*주|저번\s*주|이번\s*주|지난|저번)\s*(?P<wd>[월화수목금토일])요일{_END}")
def _ko_weekday(m, now):
    wd = _KO_WEEKDAYS[m["wd"]]
    r = "".join(m["r"].split())
    if r in ("지난", "저번"):
        return _weekday_before_today(wd, now)
    monday = _this_monday(now) - timedelta(weeks=0 if r == "이번주" else 1)
    return _weekday_in_week(wd, monday)


# --------------------------------------------------------------------------- phrases

# A phrase may start only where a word starts, and not inside a file name or number.
_LB = re.compile(r"(?<!\w)(?<!\w[-/.:@_])(?<!\d,)(?<![#$€£₩¥+~])")
# ... and ends where a word ends: no "2023.jpg", "2023-ish", "2023,5", "2000%".
_RB = r"(?!\w)(?![-/.:@]\w)(?![,.]\d)(?![%$€£°×])"
_TAIL = re.compile(r"(?:['’]s|(?:쯤|경|께)?(?:에서는|에서도|에서|에는|에도|에|의|엔|은|는|도)?)" + _RB)
_LEADS = {
    "in": "plain",
    "on": "plain",
    "during": "plain",
    "from": "from",
    "of": "of",
    "over": "plain",
    "throughout": "plain",
    "within": "plain",
    "for": "of",
    "since": "since",
    "after": "after",
    "before": "before",
    "prior to": "before",
    "until": "until",
    "till": "until",
    "til": "until",
    "through": "until",
    "thru": "until",
    "up to": "until",
    "up until": "until",
    "between": "between",
}
_LEAD = re.compile(rf"(?P<lead>{_alt(_LEADS)})\s+".replace(r"\ ", r"\s+"), re.IGNORECASE)
# Leads that make an ambiguous core ("May", "Monday") a date.
_QUALIFYING = {"plain", "since", "after", "before", "until", "between"}
_CONNECT = re.compile(
    r"\s*(?P<dash>[-–—~∼〜])\s*|\s+(?P<word>to|until|till|thru|through|and|or|&)\s+|\s*(?P<ko>부터|에서)\s*"
    r"|(?P<koand>과|와|이나|하고|이랑|랑)\s+",
    re.IGNORECASE,
)
_KO_UNTIL = re.compile(r"\s*까지")
_KO_MARK = re.compile(r"\s?(?P<mark>이후로|이후|이래로|이래|부터|이전까지|전까지|이전|전|까지|후)")
_KO_MARKS = {
    "이후로": "since",
    "이후": "since",
    "이래로": "since",
    "이래": "since",
    "부터": "since",
    "이전까지": "before",
    "전까지": "before",
    "이전": "before",
    "전": "before",
    "까지": "until",
    "후": "after",
}
_EN_MARK = re.compile(
    r"\s+(?P<mark>onwards?|on(?=\s*(?:$|[,.;!?)]))|and\s+(?:later|after)|or\s+later|and\s+(?:earlier|before)|or\s+earlier)"
    r"(?![A-Za-z0-9_])",
    re.IGNORECASE,
)
_EN_MARKS = {
    "on": "since",
    "onward": "since",
    "onwards": "since",
    "and later": "since",
    "and after": "since",
    "or later": "since",
    "and earlier": "until",
    "and before": "until",
    "or earlier": "until",
}
_DETERMINERS = {
    "the",
    "a",
    "an",
    "my",
    "our",
    "your",
    "his",
    "her",
    "their",
    "its",
    "that",
    "this",
    "those",
    "these",
    "whose",
}
# Words after which a bare 4-digit number is a count or an identifier, not a year.
_NONYEAR_BEFORE = {
    "room",
    "rm",
    "page",
    "pages",
    "pg",
    "p",
    "no",
    "nr",
    "number",
    "num",
    "flight",
    "apt",
    "apartment",
    "suite",
    "unit",
    "bus",
    "route",
    "rte",
    "order",
    "invoice",
    "ticket",
    "model",
    "version",
    "ver",
    "v",
    "id",
    "chapter",
    "ch",
    "part",
    "track",
    "episode",
    "ep",
    "item",
    "lot",
    "highway",
    "hwy",
    "gate",
    "platform",
    "seat",
    "exit",
    "account",
    "acct",
    "code",
    "pin",
    "zip",
    "street",
    "st",
    "avenue",
    "ave",
    "road",
    "rd",
    "building",
    "bldg",
    "floor",
    "box",
    "po",
    "file",
    "img",
    "dsc",
    "x",
    "×",
    "over",
    "under",
    "than",
    "top",
    "about",
    "around",
    "approximately",
    "nearly",
    "almost",
    "only",
    "just",
    "ext",
    "extension",
    "tel",
    "phone",
    "serial",
}
_NONYEAR_AFTER = {
    "km",
    "m",
    "mi",
    "mile",
    "miles",
    "meter",
    "meters",
    "metre",
    "metres",
    "kg",
    "g",
    "lb",
    "lbs",
    "pound",
    "pounds",
    "feet",
    "ft",
    "foot",
    "calorie",
    "calories",
    "kcal",
    "cal",
    "word",
    "words",
    "page",
    "pages",
    "step",
    "steps",
    "people",
    "persons",
    "dollar",
    "dollars",
    "usd",
    "euro",
    "euros",
    "eur",
    "won",
    "krw",
    "yen",
    "point",
    "points",
    "pts",
    "mb",
    "gb",
    "kb",
    "tb",
    "px",
    "pixel",
    "pixels",
    "x",
    "×",
    "dpi",
    "mm",
    "cm",
    "ml",
    "l",
    "hz",
    "mhz",
    "rpm",
    "times",
    "hours",
    "minutes",
    "seconds",
    "items",
    "rows",
    "lines",
    "characters",
    "chars",
    "bytes",
}


@dataclass(frozen=True)
class _Body:
    end: int
    cores: tuple[_Range, ...]
    connector: str | None  # dash, to, and, ko (부터 ... 까지)


def _cores_at(query: str, pos: int, now: datetime, memo: dict[int, list[_Range]]) -> list[_Range]:
    if pos in memo:
        return memo[pos]
    found: list[_Range] = []
    for pattern, handler in _CORES:
        m = pattern.match(query, pos)
        if m is None or m.end() == pos:
            continue
        try:
            r = handler(m, now)
        except (ValueError, OverflowError):
            r = None
        if r is not None:
            found.append(replace(r, start=pos, end=m.end()))
    memo[pos] = found
    return found


def _bodies_at(query: str, pos: int, now: datetime, memo: dict[int, list[_Range]]) -> list[_Body]:
    bodies: list[_Body] = []
    for c1 in _cores_at(query, pos, now, memo):
        if c1.only_as_end:
            continue
        bodies.append(_Body(c1.end, (c1,), None))
        if c1.before is None:
            continue  # a rolling window cannot start a range
        conn = _CONNECT.match(query, c1.end)
        if conn is None:
            continue
        kind = "dash" if conn["dash"] else "ko" if conn["ko"] else "and" if conn["koand"] else conn["word"].lower()
        if kind in ("until", "till", "thru", "through"):
            kind = "to"
        if kind in ("or", "&"):
            kind = "and"
        for c2 in _cores_at(query, conn.end(), now, memo):
            if c2.before is None:
                continue
            end = c2.end
            if kind == "ko":
                m_until = _KO_UNTIL.match(query, end)
                if m_until:
                    end = m_until.end()
            bodies.append(_Body(end, (c1, c2), kind))
    return bodies


def _span(c1: _Range, c2: _Range) -> _Range | None:
    """The range covering both ends; a yearless end takes the other end's year."""
    if c1.redo is not None:  # c1 has no year: put it in c2's year, or the one before
        moved = c1.redo(c2.after.year)
        if moved is not None and c2.before is not None and moved.after >= c2.before:
            moved = c1.redo(c2.after.year - 1)
        c1 = moved or c1
    elif c2.redo is not None:  # c2 has no year: put it in c1's year, or the one after
        moved = c2.redo(c1.after.year)
        if moved is not None and moved.before is not None and moved.before <= c1.after:
            moved = c2.redo(c1.after.year + 1)
        c2 = moved or c2
    if c1.after > c2.after:
        c1, c2 = c2, c1
    if c1.before is None or c2.before is None:
        return None
    after, before = c1.after, max(c1.before, c2.before)
    if c1.label == c2.label or c2.before <= c1.before:
        label = c1.label
    elif c1.kind == c2.kind == "year":
        label = f"{c1.label}–{c2.label}"
    elif c1.kind == c2.kind == "month" and c1.after.year == c2.after.year:
        label = f"{_MON_ABBR[c1.after.month - 1]}–{c2.label}"
    elif c1.kind == c2.kind == "day":
        label = _span_days_label(c1.after, c2.after)
    else:
        label = f"{c1.label} – {c2.label}"
    return _Range(after, before, label, "span")


def _open(op: str, r: _Range) -> tuple[datetime | None, datetime | None, str]:
    if op == "since":
        label = f"since {r.label}" if r.kind in ("year", "decade") else f"since {_day_label(r.after)}"
        return r.after, None, label
    if op == "after":
        if r.before is None:
            raise ValueError("open range")
        return r.before, None, f"after {r.label}"
    if op == "before":
        return None, r.after, f"before {r.label}"
    if r.before is None:
        raise ValueError("open range")
    return None, r.before, f"until {r.label}"


def _word_before(query: str, pos: int) -> str:
    m = re.search(r"([#\w×'’]+)[.:]?\s*$", query[max(0, pos - 64) : pos])
    return m.group(1).lower() if m else ""


def _word_after(query: str, pos: int) -> str:
    m = re.match(r"\s*([\w×%]+)", query[pos:])
    return m.group(1).lower() if m else ""


def _phrases_at(query: str, i: int, now: datetime, memo: dict[int, list[_Range]]) -> list[DatePhrase]:
    out: list[DatePhrase] = []
    leads: list[tuple[str | None, int]] = [(None, i)]
    lead_m = _LEAD.match(query, i)
    if lead_m:
        leads.append((_LEADS[" ".join(lead_m["lead"].lower().split())], lead_m.end()))
    for lead, j in leads:
        for body in _bodies_at(query, j, now, memo):
            two = len(body.cores) == 2
            # Marks after the body: English "onwards", Korean 부터/이후/까지 ...
            marks: list[tuple[str | None, int]] = [(None, body.end)]
            if not two and lead in (None, "from", "plain"):
                for mark_re, table in ((_EN_MARK, _EN_MARKS), (_KO_MARK, _KO_MARKS)):
                    mm = mark_re.match(query, body.end)
                    if mm:
                        marks.append((table[" ".join(mm["mark"].lower().split())], mm.end()))
            for mark, k in marks:
                tail = _TAIL.match(query, k)
                if tail is None:
                    continue
                end = tail.end()
                phrase = _make_phrase(query, i, end, lead, body, mark)
                if phrase is not None:
                    out.append(phrase)
    return out


def _make_phrase(
    query: str, start: int, end: int, lead: str | None, body: _Body, mark: str | None
) -> DatePhrase | None:
    cores = body.cores
    two = len(cores) == 2
    if lead == "between" and not (two and body.connector in ("and", "dash")):
        return None
    if lead in ("since", "after", "before", "until") and (two or mark):
        return None
    if lead == "from" and two and body.connector not in ("to", "dash", "and"):
        return None
    if two and body.connector == "ko" and lead is not None:
        return None
    # Ambiguous words need a preposition, a range, or a written year next to them.
    qualified = lead in _QUALIFYING or (lead == "from" and two) or (mark is not None and not two)
    for n, c in enumerate(cores):
        if c.needs_prep and not qualified:
            other = cores[1 - n] if two else None
            if other is None or other.year is None:
                return None
    if (
        not two
        and cores[0].name_like
        and (lead in ("from", "of") or (lead is None and _word_before(query, cores[0].start) in _BEFORE_A_PERSON))
    ):
        return None
    if lead is None:
        first = cores[0]
        if first.guard_det and _word_before(query, first.start) in _DETERMINERS:
            return None
        if (
            not two
            and first.number_like
            and mark is None
            and (_word_before(query, first.start) in _NONYEAR_BEFORE or _word_after(query, first.end) in _NONYEAR_AFTER)
        ):
            return None
    r = _span(*cores) if two else cores[0]
    if r is None:
        return None
    op = {"since": "since", "after": "after", "before": "before", "until": "until"}.get(lead or "", mark)
    try:
        after, before, label = _open(op, r) if op else (r.after, r.before, r.label)
    except ValueError:
        return None
    return DatePhrase(query[start:end], start, end, after, before, label)


def _select(candidates: list[DatePhrase]) -> list[DatePhrase]:
    """The longest candidates first, never overlapping; returned in query order."""
    chosen: list[DatePhrase] = []
    taken = bytearray(max((c.end for c in candidates), default=0))
    for c in sorted(candidates, key=lambda p: (-(p.end - p.start), p.start)):
        if not any(taken[c.start : c.end]):
            chosen.append(c)
            taken[c.start : c.end] = b"\x01" * (c.end - c.start)
    return sorted(chosen, key=lambda p: p.start)


_CLOSERS = ".,;:!?)]}…、。"
_LEADING_JUNK = " \t\r\n,;:.!?-–—~/&)]}"
_TRAILING_JUNK = " \t\r\n,;:-–—~/&([{"


def _join(left: str, right: str) -> str:
    left, right = left.rstrip(), right.lstrip()
    if left and right and left[-1] in ",;:" and right[0] in ",;:":
        right = right[1:].lstrip()
    if not left or not right:
        return left + right
    if right[0] in _CLOSERS or left[-1] in "([{":
        return left + right
    return left + " " + right


def _remove(query: str, phrases: list[DatePhrase]) -> str:
    if not phrases:
        return " ".join(query.split())
    text = query[: phrases[0].start]
    for n, p in enumerate(phrases):
        nxt = phrases[n + 1].start if n + 1 < len(phrases) else len(query)
        text = _join(text, query[p.end : nxt])
    text = re.sub(r"\(\s*\)|\[\s*\]|\{\s*\}", " ", text)
    text = " ".join(text.split())
    return text.lstrip(_LEADING_JUNK).rstrip(_TRAILING_JUNK)


def extract_dates(query: str, now: datetime | None = None) -> tuple[str, list[DatePhrase]]:
    """Returns (the query with the date phrases removed and whitespace tidied, the phrases in order)."""
    query = query or ""
    if now is None:
        now = datetime.now()
    elif now.tzinfo is not None:
        now = now.astimezone().replace(tzinfo=None)
    memo: dict[int, list[_Range]] = {}
    candidates: list[DatePhrase] = []
    for i, ch in enumerate(query):
        if (ch.isalnum() or ch in "'’") and _LB.match(query, i):
            candidates.extend(_phrases_at(query, i, now, memo))
    phrases = _select(candidates)
    return _remove(query, phrases), phrases
