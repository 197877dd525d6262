"""Dates typed in a query become time filters (engine.dates).

Every table row fixes ``now`` and states the exact cleaned text and, for each
phrase, its text, bounds and chip label.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from engine.dates import DatePhrase, combine, extract_dates
from tests.conftest import ROOT

NOW = datetime(2026, 11, 23, 10, 0)  # a Monday
FEB = datetime(2026, 2, 10, 9, 30)  # a Tuesday early in the year
D = datetime


def _y(y):
    return D(y, 1, 1), D(y + 1, 1, 1)


# (query, cleaned text, [(phrase text, after, before, label), ...])
ENGLISH = [
    # years
    ("in 2023", "", [("in 2023", *_y(2023), "2023")]),
    ("2023", "", [("2023", *_y(2023), "2023")]),
    ("beach 2023", "beach", [("2023", *_y(2023), "2023")]),
    ("2023 photos", "photos", [("2023", *_y(2023), "2023")]),
    ("photos from 2019", "photos", [("from 2019", *_y(2019), "2019")]),
    ("snow during 2020", "snow", [("during 2020", *_y(2020), "2020")]),
    ("In 1999 at grandma's", "at grandma's", [("In 1999", *_y(1999), "1999")]),
    ("photos in the year 2023", "photos", [("in the year 2023", *_y(2023), "2023")]),
    ("tax documents for 2023", "tax documents", [("for 2023", *_y(2023), "2023")]),
    ("beach (2023)", "beach", [("2023", *_y(2023), "2023")]),
    ("wedding 2023.", "wedding.", [("2023", *_y(2023), "2023")]),
    ("1990s photos", "photos", [("1990s", D(1990, 1, 1), D(2000, 1, 1), "1990s")]),
    ("music from the 90s", "music", [("from the 90s", D(1990, 1, 1), D(2000, 1, 1), "1990s")]),
    ("the '80s party", "party", [("the '80s", D(1980, 1, 1), D(1990, 1, 1), "1980s")]),
    # ISO dates, months, days
    ("2023-05-04", "", [("2023-05-04", D(2023, 5, 4), D(2023, 5, 5), "4 May 2023")]),
    ("scan 2023/05/04", "scan", [("2023/05/04", D(2023, 5, 4), D(2023, 5, 5), "4 May 2023")]),
    ("on 2023-05-04 at noon", "at noon", [("on 2023-05-04", D(2023, 5, 4), D(2023, 5, 5), "4 May 2023")]),
    ("2023-05 receipts", "receipts", [("2023-05", D(2023, 5, 1), D(2023, 6, 1), "May 2023")]),
    ("March 2024", "", [("March 2024", D(2024, 3, 1), D(2024, 4, 1), "Mar 2024")]),
    ("Mar 2024", "", [("Mar 2024", D(2024, 3, 1), D(2024, 4, 1), "Mar 2024")]),
    ("Sep. 2023 trip", "trip", [("Sep. 2023", D(2023, 9, 1), D(2023, 10, 1), "Sep 2023")]),
    ("snow in March 2024", "snow", [("in March 2024", D(2024, 3, 1), D(2024, 4, 1), "Mar 2024")]),
    ("march of 2024", "", [("march of 2024", D(2024, 3, 1), D(2024, 4, 1), "Mar 2024")]),
    ("in March", "", [("in March", D(2026, 3, 1), D(2026, 4, 1), "Mar 2026")]),
    ("March", "", [("March", D(2026, 3, 1), D(2026, 4, 1), "Mar 2026")]),
    ("december snow", "snow", [("december", D(2025, 12, 1), D(2026, 1, 1), "Dec 2025")]),
    ("photos in may", "photos", [("in may", D(2026, 5, 1), D(2026, 6, 1), "May 2026")]),
    ("in dec", "", [("in dec", D(2025, 12, 1), D(2026, 1, 1), "Dec 2025")]),
    ("May 4 2023", "", [("May 4 2023", D(2023, 5, 4), D(2023, 5, 5), "4 May 2023")]),
    ("May 4th, 2023", "", [("May 4th, 2023", D(2023, 5, 4), D(2023, 5, 5), "4 May 2023")]),
    ("4 May 2023", "", [("4 May 2023", D(2023, 5, 4), D(2023, 5, 5), "4 May 2023")]),
    ("the 4th of July 2023", "", [("the 4th of July 2023", D(2023, 7, 4), D(2023, 7, 5), "4 Jul 2023")]),
    ("on May 4", "", [("on May 4", D(2026, 5, 4), D(2026, 5, 5), "4 May 2026")]),
    ("fireworks July 4th", "fireworks", [("July 4th", D(2026, 7, 4), D(2026, 7, 5), "4 Jul 2026")]),
    ("christmas dec 25", "christmas", [("dec 25", D(2025, 12, 25), D(2025, 12, 26), "25 Dec 2025")]),
    ("in March last year", "", [("in March last year", D(2025, 3, 1), D(2025, 4, 1), "Mar 2025")]),
    ("May 4 this year", "", [("May 4 this year", D(2026, 5, 4), D(2026, 5, 5), "4 May 2026")]),
    # relative days, weeks, months, years
    ("today", "", [("today", D(2026, 11, 23), D(2026, 11, 24), "23 Nov 2026")]),
    ("screenshots from today", "screenshots", [("from today", D(2026, 11, 23), D(2026, 11, 24), "23 Nov 2026")]),
    ("yesterday", "", [("yesterday", D(2026, 11, 22), D(2026, 11, 23), "22 Nov 2026")]),
    ("the day before yesterday", "", [("the day before yesterday", D(2026, 11, 21), D(2026, 11, 22), "21 Nov 2026")]),
    ("this week", "", [("this week", D(2026, 11, 23), D(2026, 11, 30), "23–29 Nov 2026")]),
    ("last week", "", [("last week", D(2026, 11, 16), D(2026, 11, 23), "16–22 Nov 2026")]),
    ("receipts from last week", "receipts", [("from last week", D(2026, 11, 16), D(2026, 11, 23), "16–22 Nov 2026")]),
    ("last weekend", "", [("last weekend", D(2026, 11, 21), D(2026, 11, 23), "21–22 Nov 2026")]),
    ("this month", "", [("this month", D(2026, 11, 1), D(2026, 12, 1), "Nov 2026")]),
    ("last month", "", [("last month", D(2026, 10, 1), D(2026, 11, 1), "Oct 2026")]),
    ("this year", "", [("this year", *_y(2026), "2026")]),
    ("earlier this year", "", [("earlier this year", *_y(2026), "2026")]),
    ("last year", "", [("last year", *_y(2025), "2025")]),
    ("LAST YEAR", "", [("LAST YEAR", *_y(2025), "2025")]),
    ("photos from last year's trip", "photos trip", [("from last year's", *_y(2025), "2025")]),
    ("3 days ago", "", [("3 days ago", D(2026, 11, 20), D(2026, 11, 21), "20 Nov 2026")]),
    ("a week ago", "", [("a week ago", D(2026, 11, 16), D(2026, 11, 23), "16–22 Nov 2026")]),
    ("two weeks ago", "", [("two weeks ago", D(2026, 11, 9), D(2026, 11, 16), "9–15 Nov 2026")]),
    ("3 months ago", "", [("3 months ago", D(2026, 8, 1), D(2026, 9, 1), "Aug 2026")]),
    ("12 months ago", "", [("12 months ago", D(2025, 11, 1), D(2025, 12, 1), "Nov 2025")]),
    ("2 years ago", "", [("2 years ago", *_y(2024), "2024")]),
    # rolling windows: from now minus N, open upper bound
    ("past 7 days", "", [("past 7 days", D(2026, 11, 16, 10), None, "Past 7 days")]),
    ("last 3 months", "", [("last 3 months", D(2026, 8, 23, 10), None, "Past 3 months")]),
    ("in the last 2 weeks", "", [("in the last 2 weeks", D(2026, 11, 9, 10), None, "Past 2 weeks")]),
    ("over the past 3 months", "", [("over the past 3 months", D(2026, 8, 23, 10), None, "Past 3 months")]),
    ("the past week", "", [("the past week", D(2026, 11, 16, 10), None, "Past week")]),
    ("within the last year", "", [("within the last year", D(2025, 11, 23, 10), None, "Past year")]),
    ("recently", "", [("recently", D(2026, 10, 24, 10), None, "Past 30 days")]),
    ("cat photos lately", "cat photos", [("lately", D(2026, 10, 24, 10), None, "Past 30 days")]),
    # seasons
    ("last summer", "", [("last summer", D(2026, 6, 1), D(2026, 9, 1), "Summer 2026")]),
    ("this summer", "", [("this summer", D(2026, 6, 1), D(2026, 9, 1), "Summer 2026")]),
    ("this past summer", "", [("this past summer", D(2026, 6, 1), D(2026, 9, 1), "Summer 2026")]),
    ("last autumn", "", [("last autumn", D(2025, 9, 1), D(2025, 12, 1), "Autumn 2025")]),
    ("last fall", "", [("last fall", D(2025, 9, 1), D(2025, 12, 1), "Fall 2025")]),
    ("last winter", "", [("last winter", D(2025, 12, 1), D(2026, 3, 1), "Winter 2025–26")]),
    ("this winter", "", [("this winter", D(2026, 12, 1), D(2027, 3, 1), "Winter 2026–27")]),
    ("last spring", "", [("last spring", D(2026, 3, 1), D(2026, 6, 1), "Spring 2026")]),
    ("summer 2023", "", [("summer 2023", D(2023, 6, 1), D(2023, 9, 1), "Summer 2023")]),
    ("fall 2023", "", [("fall 2023", D(2023, 9, 1), D(2023, 12, 1), "Fall 2023")]),
    ("spring 2022 hike", "hike", [("spring 2022", D(2022, 3, 1), D(2022, 6, 1), "Spring 2022")]),
    ("winter 2023", "", [("winter 2023", D(2023, 12, 1), D(2024, 3, 1), "Winter 2023–24")]),
    ("in the summer of 2023", "", [("in the summer of 2023", D(2023, 6, 1), D(2023, 9, 1), "Summer 2023")]),
    ("summer last year", "", [("summer last year", D(2025, 6, 1), D(2025, 9, 1), "Summer 2025")]),
    (
        "the kids at the beach last summer",
        "the kids at the beach",
        [("last summer", D(2026, 6, 1), D(2026, 9, 1), "Summer 2026")],
    ),
    ("what did we do last summer?", "what did we do?", [("last summer", D(2026, 6, 1), D(2026, 9, 1), "Summer 2026")]),
    (
        "beach, last summer, with kids",
        "beach, with kids",
        [("last summer", D(2026, 6, 1), D(2026, 9, 1), "Summer 2026")],
    ),
    # open ranges
    ("since March", "", [("since March", D(2026, 3, 1), None, "since 1 Mar 2026")]),
    ("since may", "", [("since may", D(2026, 5, 1), None, "since 1 May 2026")]),
    ("since 2020", "", [("since 2020", D(2020, 1, 1), None, "since 2020")]),
    ("since last week", "", [("since last week", D(2026, 11, 16), None, "since 16 Nov 2026")]),
    ("after 2019", "", [("after 2019", D(2020, 1, 1), None, "after 2019")]),
    ("after May 4", "", [("after May 4", D(2026, 5, 5), None, "after 4 May 2026")]),
    ("before 2020", "", [("before 2020", None, D(2020, 1, 1), "before 2020")]),
    ("before last summer", "", [("before last summer", None, D(2026, 6, 1), "before Summer 2026")]),
    ("until June 2021", "", [("until June 2021", None, D(2021, 7, 1), "until Jun 2021")]),
    ("until yesterday", "", [("until yesterday", None, D(2026, 11, 23), "until 22 Nov 2026")]),
    ("prior to 2000", "", [("prior to 2000", None, D(2000, 1, 1), "before 2000")]),
    ("2019 onwards", "", [("2019 onwards", D(2019, 1, 1), None, "since 2019")]),
    ("from 2019 on", "", [("from 2019 on", D(2019, 1, 1), None, "since 2019")]),
    # closed ranges
    ("between 2019 and 2021", "", [("between 2019 and 2021", D(2019, 1, 1), D(2022, 1, 1), "2019–2021")]),
    ("from 2019 to 2021", "", [("from 2019 to 2021", D(2019, 1, 1), D(2022, 1, 1), "2019–2021")]),
    ("between 2021 and 2019", "", [("between 2021 and 2019", D(2019, 1, 1), D(2022, 1, 1), "2019–2021")]),
    ("2019–2021 trips", "trips", [("2019–2021", D(2019, 1, 1), D(2022, 1, 1), "2019–2021")]),
    ("2019-2021", "", [("2019-2021", D(2019, 1, 1), D(2022, 1, 1), "2019–2021")]),
    ("photos from 2023 and 2024", "photos", [("from 2023 and 2024", D(2023, 1, 1), D(2025, 1, 1), "2023–2024")]),
    ("from March to June 2021", "", [("from March to June 2021", D(2021, 3, 1), D(2021, 7, 1), "Mar–Jun 2021")]),
    ("between March and May", "", [("between March and May", D(2026, 3, 1), D(2026, 6, 1), "Mar–May 2026")]),
    (
        "from December to February",
        "",
        [("from December to February", D(2025, 12, 1), D(2026, 3, 1), "Dec 2025 – Feb 2026")],
    ),
    ("Jan–Mar 2023", "", [("Jan–Mar 2023", D(2023, 1, 1), D(2023, 4, 1), "Jan–Mar 2023")]),
    ("from April to June", "", [("from April to June", D(2026, 4, 1), D(2026, 7, 1), "Apr–Jun 2026")]),
    ("from May 4 to May 10 2023", "", [("from May 4 to May 10 2023", D(2023, 5, 4), D(2023, 5, 11), "4–10 May 2023")]),
    ("from 2019 to now", "", [("from 2019 to now", D(2019, 1, 1), D(2026, 11, 24), "2019 – 23 Nov 2026")]),
    # weekdays: the most recent such day before today
    ("on Monday", "", [("on Monday", D(2026, 11, 16), D(2026, 11, 17), "Mon 16 Nov 2026")]),
    ("last Friday", "", [("last Friday", D(2026, 11, 20), D(2026, 11, 21), "Fri 20 Nov 2026")]),
    ("since Saturday", "", [("since Saturday", D(2026, 11, 21), None, "since 21 Nov 2026")]),
]

KOREAN = [
    ("작년", "", [("작년", *_y(2025), "2025")]),
    ("지난해", "", [("지난해", *_y(2025), "2025")]),
    ("재작년", "", [("재작년", *_y(2024), "2024")]),
    ("올해", "", [("올해", *_y(2026), "2026")]),
    ("금년", "", [("금년", *_y(2026), "2026")]),
    ("지난주", "", [("지난주", D(2026, 11, 16), D(2026, 11, 23), "16–22 Nov 2026")]),
    ("지난 주", "", [("지난 주", D(2026, 11, 16), D(2026, 11, 23), "16–22 Nov 2026")]),
    ("저번 주", "", [("저번 주", D(2026, 11, 16), D(2026, 11, 23), "16–22 Nov 2026")]),
    ("이번주", "", [("이번주", D(2026, 11, 23), D(2026, 11, 30), "23–29 Nov 2026")]),
    ("이번 주", "", [("이번 주", D(2026, 11, 23), D(2026, 11, 30), "23–29 Nov 2026")]),
    ("지지난주", "", [("지지난주", D(2026, 11, 9), D(2026, 11, 16), "9–15 Nov 2026")]),
    ("지난 주말", "", [("지난 주말", D(2026, 11, 21), D(2026, 11, 23), "21–22 Nov 2026")]),
    ("지난달", "", [("지난달", D(2026, 10, 1), D(2026, 11, 1), "Oct 2026")]),
    ("지난 달", "", [("지난 달", D(2026, 10, 1), D(2026, 11, 1), "Oct 2026")]),
    ("이번달", "", [("이번달", D(2026, 11, 1), D(2026, 12, 1), "Nov 2026")]),
    ("이번 달", "", [("이번 달", D(2026, 11, 1), D(2026, 12, 1), "Nov 2026")]),
    ("어제", "", [("어제", D(2026, 11, 22), D(2026, 11, 23), "22 Nov 2026")]),
    ("오늘", "", [("오늘", D(2026, 11, 23), D(2026, 11, 24), "23 Nov 2026")]),
    ("그저께", "", [("그저께", D(2026, 11, 21), D(2026, 11, 22), "21 Nov 2026")]),
    ("그제", "", [("그제", D(2026, 11, 21), D(2026, 11, 22), "21 Nov 2026")]),
    ("2023년", "", [("2023년", *_y(2023), "2023")]),
    ("2023년 3월", "", [("2023년 3월", D(2023, 3, 1), D(2023, 4, 1), "Mar 2023")]),
    ("2023년3월", "", [("2023년3월", D(2023, 3, 1), D(2023, 4, 1), "Mar 2023")]),
    ("3월", "", [("3월", D(2026, 3, 1), D(2026, 4, 1), "Mar 2026")]),
    ("12월", "", [("12월", D(2025, 12, 1), D(2026, 1, 1), "Dec 2025")]),
    ("2023년 3월 5일", "", [("2023년 3월 5일", D(2023, 3, 5), D(2023, 3, 6), "5 Mar 2023")]),
    ("12월 25일", "", [("12월 25일", D(2025, 12, 25), D(2025, 12, 26), "25 Dec 2025")]),
    ("2023.3.5", "", [("2023.3.5", D(2023, 3, 5), D(2023, 3, 6), "5 Mar 2023")]),
    ("2023.03.05 가족", "가족", [("2023.03.05", D(2023, 3, 5), D(2023, 3, 6), "5 Mar 2023")]),
    ("작년 3월", "", [("작년 3월", D(2025, 3, 1), D(2025, 4, 1), "Mar 2025")]),
    ("작년 여름", "", [("작년 여름", D(2025, 6, 1), D(2025, 9, 1), "Summer 2025")]),
    ("지난 여름", "", [("지난 여름", D(2026, 6, 1), D(2026, 9, 1), "Summer 2026")]),
    ("올여름", "", [("올여름", D(2026, 6, 1), D(2026, 9, 1), "Summer 2026")]),
    ("2023년 여름", "", [("2023년 여름", D(2023, 6, 1), D(2023, 9, 1), "Summer 2023")]),
    ("재작년 겨울", "", [("재작년 겨울", D(2024, 12, 1), D(2025, 3, 1), "Winter 2024–25")]),
    ("지난 가을", "", [("지난 가을", D(2025, 9, 1), D(2025, 12, 1), "Autumn 2025")]),
    ("2020년부터", "", [("2020년부터", D(2020, 1, 1), None, "since 2020")]),
    ("2020년 이후", "", [("2020년 이후", D(2020, 1, 1), None, "since 2020")]),
    ("2020년 이전", "", [("2020년 이전", None, D(2020, 1, 1), "before 2020")]),
    ("2020년까지", "", [("2020년까지", None, D(2021, 1, 1), "until 2020")]),
    ("3월부터", "", [("3월부터", D(2026, 3, 1), None, "since 1 Mar 2026")]),
    ("2019년부터 2021년까지", "", [("2019년부터 2021년까지", D(2019, 1, 1), D(2022, 1, 1), "2019–2021")]),
    ("2019~2021년", "", [("2019~2021년", D(2019, 1, 1), D(2022, 1, 1), "2019–2021")]),
    ("3월부터 5월까지", "", [("3월부터 5월까지", D(2026, 3, 1), D(2026, 6, 1), "Mar–May 2026")]),
    ("2019년과 2021년", "", [("2019년과 2021년", D(2019, 1, 1), D(2022, 1, 1), "2019–2021")]),
    ("3일 전", "", [("3일 전", D(2026, 11, 20), D(2026, 11, 21), "20 Nov 2026")]),
    ("3일전", "", [("3일전", D(2026, 11, 20), D(2026, 11, 21), "20 Nov 2026")]),
    ("이틀 전", "", [("이틀 전", D(2026, 11, 21), D(2026, 11, 22), "21 Nov 2026")]),
    ("2주 전", "", [("2주 전", D(2026, 11, 9), D(2026, 11, 16), "9–15 Nov 2026")]),
    ("일주일 전", "", [("일주일 전", D(2026, 11, 16), D(2026, 11, 23), "16–22 Nov 2026")]),
    ("3달 전", "", [("3달 전", D(2026, 8, 1), D(2026, 9, 1), "Aug 2026")]),
    ("한 달 전", "", [("한 달 전", D(2026, 10, 1), D(2026, 11, 1), "Oct 2026")]),
    ("3개월 전", "", [("3개월 전", D(2026, 8, 1), D(2026, 9, 1), "Aug 2026")]),
    ("2년 전", "", [("2년 전", *_y(2024), "2024")]),
    ("3일 전부터", "", [("3일 전부터", D(2026, 11, 20), None, "since 20 Nov 2026")]),
    ("최근", "", [("최근", D(2026, 10, 24, 10), None, "Past 30 days")]),
    ("최근 3개월", "", [("최근 3개월", D(2026, 8, 23, 10), None, "Past 3 months")]),
    ("지난 3일간", "", [("지난 3일간", D(2026, 11, 20, 10), None, "Past 3 days")]),
    ("최근 일주일", "", [("최근 일주일", D(2026, 11, 16, 10), None, "Past week")]),
    ("지난 월요일", "", [("지난 월요일", D(2026, 11, 16), D(2026, 11, 17), "Mon 16 Nov 2026")]),
    ("지난주 금요일", "", [("지난주 금요일", D(2026, 11, 20), D(2026, 11, 21), "Fri 20 Nov 2026")]),
    # particles go with the phrase
    ("작년에 찍은 바다 사진", "찍은 바다 사진", [("작년에", *_y(2025), "2025")]),
    ("지난주에 간 카페", "간 카페", [("지난주에", D(2026, 11, 16), D(2026, 11, 23), "16–22 Nov 2026")]),
    ("2023년의 사진", "사진", [("2023년의", *_y(2023), "2023")]),
    ("지난 여름에 간 바다", "간 바다", [("지난 여름에", D(2026, 6, 1), D(2026, 9, 1), "Summer 2026")]),
    ("이번 주에는 고양이", "고양이", [("이번 주에는", D(2026, 11, 23), D(2026, 11, 30), "23–29 Nov 2026")]),
    ("2020년 이후에 찍은 강아지", "찍은 강아지", [("2020년 이후에", D(2020, 1, 1), None, "since 2020")]),
    ("아이들 어제 사진", "아이들 사진", [("어제", D(2026, 11, 22), D(2026, 11, 23), "22 Nov 2026")]),
    ("3월쯤 제주도", "제주도", [("3월쯤", D(2026, 3, 1), D(2026, 4, 1), "Mar 2026")]),
]

# Before March has started, "March" is last year's; the most recent finished winter is a year back.
EARLY_IN_YEAR = [
    ("in March", "", [("in March", D(2025, 3, 1), D(2025, 4, 1), "Mar 2025")]),
    ("since March", "", [("since March", D(2025, 3, 1), None, "since 1 Mar 2025")]),
    ("3월", "", [("3월", D(2025, 3, 1), D(2025, 4, 1), "Mar 2025")]),
    ("in February", "", [("in February", D(2026, 2, 1), D(2026, 3, 1), "Feb 2026")]),
    ("May 4", "", [("May 4", D(2025, 5, 4), D(2025, 5, 5), "4 May 2025")]),
    ("last winter", "", [("last winter", D(2024, 12, 1), D(2025, 3, 1), "Winter 2024–25")]),
    ("this winter", "", [("this winter", D(2025, 12, 1), D(2026, 3, 1), "Winter 2025–26")]),
    ("last summer", "", [("last summer", D(2025, 6, 1), D(2025, 9, 1), "Summer 2025")]),
    ("this week", "", [("this week", D(2026, 2, 9), D(2026, 2, 16), "9–15 Feb 2026")]),
    ("last week", "", [("last week", D(2026, 2, 2), D(2026, 2, 9), "2–8 Feb 2026")]),
    ("last month", "", [("last month", D(2026, 1, 1), D(2026, 2, 1), "Jan 2026")]),
    ("2 months ago", "", [("2 months ago", D(2025, 12, 1), D(2026, 1, 1), "Dec 2025")]),
    ("on Tuesday", "", [("on Tuesday", D(2026, 2, 3), D(2026, 2, 4), "Tue 3 Feb 2026")]),
    ("past 3 months", "", [("past 3 months", D(2025, 11, 10, 9, 30), None, "Past 3 months")]),
    (
        "from December to February",
        "",
        [("from December to February", D(2025, 12, 1), D(2026, 3, 1), "Dec 2025 – Feb 2026")],
    ),
]

# Not dates: the text stays as typed (whitespace collapsed) and no phrase is found.
NOT_DATES = [
    "march of the penguins",
    "in march of the penguins",
    "kids march in the parade",
    "march to the sea",
    "what may happen",
    "you may find it",
    "waterfall",
    "waterfall 2023x",
    "fall down the stairs",
    "autumn leaves",
    "summer dress",
    "in summer",
    "spring water",
    "the second photo",
    "wait a second",
    "IMG_2023.jpg",
    "IMG-2023.jpg",
    "IMG_2023-05-04.jpg",
    "2023-05-04.jpg",
    "report 2023.pdf",
    "room 2023",
    "page 1999",
    "flight 2020 to Paris",
    "2000 km",
    "1920 x 1080",
    "$2000",
    "#2023",
    "2,023 steps",
    "2023%",
    "2023.5",
    "1899",
    "2100",
    "12345",
    "2023-13-01",
    "2023-02-30",
    "the last summer of childhood",
    "my last week at work",
    "last week of march",
    "a letter from June",
    "dinner with june",
    "jan",
    "monday meeting notes",
    "mondays",
    "90s music",
    "in her 90s",
    "summer of '69",
    "tomorrow",
    "next week",
    "내년 계획",
    "오늘날",
    "어제오늘",
    "이번 주제",
    "지난 해변",
    "지난 여행",
    "봄 꽃",
    "3월급",
    "13월",
    "",
    "   ",
    "🏖️",
    "🏖️ beach 🌊",
    "👨‍👩‍👧 at the park",
    "hello, world!",
]


def _run(query, now=NOW):
    text, phrases = extract_dates(query, now)
    return text, [(p.text, p.after, p.before, p.label) for p in phrases], phrases


@pytest.mark.parametrize(("query", "text", "expected"), ENGLISH, ids=[row[0] for row in ENGLISH])
def test_english(query, text, expected):
    got_text, got, _ = _run(query)
    assert got == expected
    assert got_text == text


@pytest.mark.parametrize(("query", "text", "expected"), KOREAN, ids=[row[0] for row in KOREAN])
def test_korean(query, text, expected):
    got_text, got, _ = _run(query)
    assert got == expected
    assert got_text == text


@pytest.mark.parametrize(("query", "text", "expected"), EARLY_IN_YEAR, ids=[row[0] for row in EARLY_IN_YEAR])
def test_early_in_the_year(query, text, expected):
    got_text, got, _ = _run(query, FEB)
    assert got == expected
    assert got_text == text


@pytest.mark.parametrize("query", NOT_DATES)
def test_not_dates(query):
    text, phrases = extract_dates(query, NOW)
    assert phrases == []
    assert text == " ".join(query.split())


def test_spans_in_a_longer_query():
    q = "the kids at the beach last summer"
    _, _, (p,) = _run(q)
    assert (p.start, p.end) == (22, 33)
    q = "작년에 찍은 바다 사진"
    _, _, (p,) = _run(q)
    assert (p.start, p.end, p.text) == (0, 3, "작년에")


def test_multiple_phrases_and_their_intersection():
    text, got, phrases = _run("photos from 2023 since March")
    assert text == "photos"
    assert got == [("from 2023", *_y(2023), "2023"), ("since March", D(2026, 3, 1), None, "since 1 Mar 2026")]
    after, before = combine(phrases)
    assert (after, before) == (D(2026, 3, 1), D(2024, 1, 1))  # contradictory: an empty range, as asked
    assert after is not None and before is not None and after >= before

    text, got, phrases = _run("beach in 2026 since March")
    assert text == "beach"
    assert combine(phrases) == (D(2026, 3, 1), D(2027, 1, 1))

    text, got, phrases = _run("dog before 2024 2023년 이후 공원")
    assert text == "dog 공원"
    assert [p[0] for p in got] == ["before 2024", "2023년 이후"]
    assert combine(phrases) == (D(2023, 1, 1), D(2024, 1, 1))

    text, got, phrases = _run("last summer and last winter trips")
    # two seasons joined by "and": one span covering both
    assert text == "trips"
    assert got == [("last summer and last winter", D(2025, 12, 1), D(2026, 9, 1), "Winter 2025–26 – Summer 2026")]


def test_combine():
    assert combine([]) == (None, None)
    a = DatePhrase("since 2020", 0, 10, D(2020, 1, 1), None, "since 2020")
    b = DatePhrase("before 2022", 11, 22, None, D(2022, 1, 1), "before 2022")
    c = DatePhrase("2021", 23, 27, D(2021, 1, 1), D(2022, 1, 1), "2021")
    assert combine([a]) == (D(2020, 1, 1), None)
    assert combine([b]) == (None, D(2022, 1, 1))
    assert combine([a, b]) == (D(2020, 1, 1), D(2022, 1, 1))
    assert combine([a, b, c]) == (D(2021, 1, 1), D(2022, 1, 1))
    assert combine(iter([c, a])) == (D(2021, 1, 1), D(2022, 1, 1))


def test_to_json():
    _, _, (p,) = _run("beach since March")
    assert p.to_json() == {
        "text": "since March",
        "start": 6,
        "end": 17,
        "after": "2026-03-01T00:00:00",
        "before": None,
        "label": "since 1 Mar 2026",
    }
    _, _, (p,) = _run("in 2023")
    data = p.to_json()
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    assert (data["after"], data["before"]) == ("2023-01-01T00:00:00", "2024-01-01T00:00:00")


def test_phrase_is_frozen():
    _, _, (p,) = _run("2023")
    with pytest.raises(AttributeError):
        p.text = "x"


def test_now_defaults_to_the_clock_and_aware_now_is_made_naive():
    before = datetime.now().date()
    _, (p,) = extract_dates("today")
    after = datetime.now().date()
    assert p.after is not None and p.after.tzinfo is None
    assert p.after.date() in (before, after)
    assert p.before is not None and p.before - p.after == timedelta(days=1)

    aware = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
    _, (p,) = extract_dates("last year", aware)
    assert (p.after, p.before) == _y(2025)
    assert p.after is not None and p.after.tzinfo is None


def test_punctuation_is_tidied_only_where_a_phrase_was_removed():
    assert extract_dates("2023: beach trip", NOW)[0] == "beach trip"
    assert extract_dates("beach trip - 2023", NOW)[0] == "beach trip"
    assert extract_dates("snow, in 2021, mountains", NOW)[0] == "snow, mountains"
    assert extract_dates("  kids   at  the beach  ", NOW)[0] == "kids at the beach"
    assert extract_dates("kids – at the beach!", NOW)[0] == "kids – at the beach!"


ALL_QUERIES = (
    [row[0] for row in ENGLISH + KOREAN + EARLY_IN_YEAR]
    + NOT_DATES
    + [
        "photos from 2023 since March",
        "the kids at the beach last summer and in 2024 or maybe 2019–2021",
        "작년 여름에 찍은 사진, 2023년 3월 5일, 최근 3개월 그리고 지난주 금요일",
        "from 2019 to 2021 between 2019 and 2021 before 2020 after 2019 until June 2021",
        "IMG_2023.jpg from 2023-05-04 in May 2023 and on May 4 2023",
        "  yesterday\ttoday\nlast week  ",
        "2023 2024 2025",
        "May may MAY march March MARCH in may in march",
        "🏖️ 2023 🌊 작년에",
    ]
)


def _is_subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


@pytest.mark.parametrize("now", [NOW, FEB])
def test_spans_always_match_the_query(now):
    found = 0
    for q in ALL_QUERIES:
        text, phrases = extract_dates(q, now)
        last_end = 0
        for p in phrases:
            assert q[p.start : p.end] == p.text, q
            assert p.text.strip() == p.text and p.text, q
            assert p.start >= last_end, f"overlap in {q!r}"
            last_end = p.end
            assert p.after is not None or p.before is not None
            if p.after is not None and p.before is not None:
                assert p.after < p.before, q
            assert p.label
            found += 1
        # the cleaned text only keeps characters from outside the phrases, in order
        rest = "".join(
            q[a:b] for a, b in zip([0] + [p.end for p in phrases], [p.start for p in phrases] + [len(q)], strict=True)
        )
        assert _is_subsequence(text.replace(" ", ""), rest.replace(" ", "")), q
        assert text == " ".join(text.split())
    assert found > 150


def test_engine_dates_imports_no_qt_and_nothing_heavy():
    code = (
        "import sys, engine.dates\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'PyQt5', 'PyQt6', 'shiboken6', 'numpy', 'torch', 'apsw'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
