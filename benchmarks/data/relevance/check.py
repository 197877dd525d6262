"""Validate the known-item relevance benchmark in this folder.

Run from the repository root:

    .venv/bin/python benchmarks/data/relevance/check.py

It loads ``queries.json`` and the notes under ``notes/``, checks the rules described in
README.md, prints a summary table and exits with status 1 (listing every violation) if any
rule is broken, 0 otherwise. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTES_DIR = HERE / "notes"
QUERIES_FILE = HERE / "queries.json"

CATEGORIES = (
    "paraphrase",
    "exact",
    "name",
    "korean",
    "korean-paraphrase",
    "normalisation",
    "nonsense",
    "absent",
)
KINDS = {"document"}
NOTE_SUFFIXES = {".md", ".txt"}

# Folders holding the "find me by name" files and the normalisation cases; the notes in
# them are not part of the 60 English notes that each need a paraphrase query.
EXTRA_DIRS = {"misc", "scans", "projects"}

EXPECTED_ENGLISH_NOTES = 60
EXPECTED_KOREAN_NOTES = 12
ENGLISH_NOTE_WORDS = (40, 120)
KOREAN_NOTE_SENTENCES = (2, 5)
PARAPHRASE_WORDS = (4, 10)

STOP_WORDS = frozenset(
    """
    a an the and or but nor if then else so than too very of to in on at by for from with
    without into onto upon about above below over under up down out off again further once
    here there when where why how what which who whom whose this that these those
    i me my mine myself we us our ours ourselves you your yours yourself yourselves
    he him his himself she her hers herself it its itself they them their theirs themselves
    am is are was were be been being have has had having do does did doing done
    will would shall should can could may might must
    not no yes all any both each few more most other some such only own same just
    as until while because between through during before after against among
    s t d ll m re ve don didn doesn isn wasn aren weren won wouldn couldn shouldn
    """.split()
)

# Simple English suffixes, longest first.
SUFFIXES = ("ing", "ies", "ied", "es", "ed", "ly", "s")
MIN_STEM = 3

# Korean particles stripped from the end of a word before comparing, longest first.
KOREAN_PARTICLES = tuple(sorted("은 는 이 가 을 를 의 에 에서 도 와 과 로 으로".split(), key=len, reverse=True))
# Stricter than whole-word equality: two Korean words of at least this many syllables also
# clash when one is a prefix of the other (예약 / 예약했다), since verb and noun endings other
# than the particles above are not stripped.
KOREAN_PREFIX_MIN = 2

WORD_RE = re.compile(r"[^\W_]+")
HANGUL_RE = re.compile(r"[\uac00-\ud7a3]")
LATIN_RE = re.compile(r"[A-Za-z]")
CAMEL_RE = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
SENTENCE_END_RE = re.compile(r"[.!?。]+(?=\s|$)")


# --------------------------------------------------------------------------- text helpers


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> list[str]:
    """Lower-cased NFKC words: runs of letters/digits (anything else separates)."""
    return WORD_RE.findall(normalise(text))


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOP_WORDS]


def is_hangul(word: str) -> bool:
    return bool(HANGUL_RE.search(word))


def forms(word: str) -> set[str]:
    """The word plus its simple stems (English) or particle-stripped form (Korean)."""
    out = {word}
    if is_hangul(word):
        for particle in KOREAN_PARTICLES:
            if word.endswith(particle) and len(word) > len(particle):
                out.add(word[: -len(particle)])
        return out
    for suffix in SUFFIXES:
        if not word.endswith(suffix):
            continue
        stem = word[: -len(suffix)]
        if suffix in ("ing", "ed", "es") and len(stem) + 1 >= MIN_STEM:
            out.add(stem + "e")  # baking -> bake, owed -> owe
        if len(stem) < MIN_STEM:
            continue
        out.add(stem)
        if suffix in ("ies", "ied"):
            out.add(stem + "y")
        if suffix in ("ing", "ed") and len(stem) > MIN_STEM and stem[-1] == stem[-2]:
            out.add(stem[:-1])  # running -> run
    return out


def path_words(rel: str) -> list[str]:
    """Words of a note's path below notes/ (folders and file stem, camel case split)."""
    parts = Path(rel).with_suffix("").parts
    out: list[str] = []
    for part in parts:
        out.extend(words(part))
        out.extend(words(CAMEL_RE.sub(" ", part)))
    return [w for w in out if w not in STOP_WORDS]


def clashes(query_words: list[str], note_words: list[str]) -> list[str]:
    """Query words that share a word or simple stem with the note's words."""
    note_forms: set[str] = set()
    note_hangul: set[str] = set()
    for w in note_words:
        f = forms(w)
        note_forms |= f
        if is_hangul(w):
            note_hangul |= f
    hits = []
    for qw in dict.fromkeys(query_words):
        qf = forms(qw)
        if qf & note_forms:
            hits.append(qw)
            continue
        if is_hangul(qw):
            for a in qf:
                if len(a) < KOREAN_PREFIX_MIN:
                    continue
                if any(len(b) >= KOREAN_PREFIX_MIN and (b.startswith(a) or a.startswith(b)) for b in note_hangul):
                    hits.append(qw)
                    break
    return hits


def contains_sequence(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


# --------------------------------------------------------------------------- loading


class Note:
    def __init__(self, path: Path):
        self.path = path
        self.rel = path.relative_to(NOTES_DIR).as_posix()
        self.raw = path.read_text(encoding="utf-8")
        self.words = words(self.raw)
        self.path_words = path_words(self.rel)
        hangul = len(HANGUL_RE.findall(self.raw))
        latin = len(LATIN_RE.findall(self.raw))
        top = Path(self.rel).parts[0]
        if hangul > latin:
            self.group = "korean"
        elif top in EXTRA_DIRS:
            self.group = "extra"
        else:
            self.group = "english"

    @property
    def all_words(self) -> list[str]:
        """Content words plus path words: everything a search could match on."""
        return [w for w in self.words if w not in STOP_WORDS] + self.path_words


def load_notes() -> dict[str, Note]:
    notes = {}
    for path in sorted(NOTES_DIR.rglob("*")):
        if path.is_file():
            note = Note(path)
            notes[note.rel] = note
    return notes


# --------------------------------------------------------------------------- checks


def check(notes: dict[str, Note], queries: list) -> tuple[list[str], Counter]:
    problems: list[str] = []
    by_category: Counter = Counter()
    paraphrase_targets: Counter = Counter()
    korean_paraphrase_targets: Counter = Counter()
    seen_queries: set[str] = set()

    for rel, note in notes.items():
        if note.path.suffix not in NOTE_SUFFIXES:
            problems.append(f"note {rel!r}: not a .md or .txt file")
        if note.group == "english":
            n = len([t for t in note.raw.split() if WORD_RE.search(t)])
            lo, hi = ENGLISH_NOTE_WORDS
            if not lo <= n <= hi:
                problems.append(f"note {rel!r}: {n} words, want {lo}-{hi}")
        elif note.group == "korean":
            n = len(SENTENCE_END_RE.findall(note.raw.strip()))
            lo, hi = KOREAN_NOTE_SENTENCES
            if not lo <= n <= hi:
                problems.append(f"note {rel!r}: {n} sentences, want {lo}-{hi}")

    groups = Counter(n.group for n in notes.values())
    if groups["english"] != EXPECTED_ENGLISH_NOTES:
        problems.append(f"{groups['english']} English notes, want {EXPECTED_ENGLISH_NOTES}")
    if groups["korean"] != EXPECTED_KOREAN_NOTES:
        problems.append(f"{groups['korean']} Korean notes, want {EXPECTED_KOREAN_NOTES}")

    if not isinstance(queries, list):
        return ["queries.json: top level is not a list"], by_category

    for i, q in enumerate(queries):
        where = f"query #{i}"
        if not isinstance(q, dict):
            problems.append(f"{where}: not an object")
            continue
        text, expect, cat = q.get("query"), q.get("expect"), q.get("category")
        where = f"query #{i} {text!r} [{cat}]"
        extra_keys = set(q) - {"query", "expect", "category", "kind"}
        if extra_keys:
            problems.append(f"{where}: unknown keys {sorted(extra_keys)}")
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: 'query' must be a non-empty string")
            continue
        if not isinstance(expect, list) or not all(isinstance(e, str) for e in expect):
            problems.append(f"{where}: 'expect' must be a list of strings")
            continue
        if cat not in CATEGORIES:
            problems.append(f"{where}: unknown category")
            continue
        if "kind" in q and q["kind"] not in KINDS:
            problems.append(f"{where}: unknown kind {q['kind']!r}")
        by_category[cat] += 1
        if text in seen_queries:
            problems.append(f"{where}: duplicate query")
        seen_queries.add(text)
        if len(set(expect)) != len(expect):
            problems.append(f"{where}: duplicate expected path")
        missing = [e for e in expect if e not in notes]
        problems.extend(f"{where}: expected file notes/{e} does not exist" for e in missing)
        if missing:
            continue
        targets = [notes[e] for e in expect]
        qwords = content_words(text)

        if cat == "paraphrase":
            if len(targets) != 1 or targets[0].group != "english":
                problems.append(f"{where}: must expect exactly one English note")
                continue
            paraphrase_targets[expect[0]] += 1
            n = len(text.split())
            lo, hi = PARAPHRASE_WORDS
            if not lo <= n <= hi:
                problems.append(f"{where}: {n} words, want {lo}-{hi}")
            shared = clashes(qwords, targets[0].all_words)
            if shared:
                problems.append(f"{where}: shares {shared} with notes/{expect[0]}")

        elif cat == "korean-paraphrase":
            if len(targets) != 1 or targets[0].group != "korean":
                problems.append(f"{where}: must expect exactly one Korean note")
                continue
            korean_paraphrase_targets[expect[0]] += 1
            if not any(is_hangul(w) for w in qwords):
                problems.append(f"{where}: not a Korean query")
            shared = clashes(qwords, targets[0].all_words)
            if shared:
                problems.append(f"{where}: shares {shared} with notes/{expect[0]}")

        elif cat == "exact":
            if len(targets) != 1:
                problems.append(f"{where}: must expect exactly one note")
                continue
            needle = words(text)
            holders = sorted(r for r, n in notes.items() if contains_sequence(n.words, needle))
            if holders != expect:
                problems.append(f"{where}: phrase occurs in {holders}, expected {expect}")

        elif cat == "korean":
            if len(targets) != 1 or targets[0].group != "korean":
                problems.append(f"{where}: must expect exactly one Korean note")
                continue
            if not qwords or not all(is_hangul(w) for w in qwords):
                problems.append(f"{where}: not a Korean query")
            # A note "holds" the query when every query word matches one of its words
            # (same rule as the clash test, so 백운대 is found in 백운대까지).
            holders = sorted(
                r for r, n in notes.items() if qwords and len(clashes(qwords, n.words)) == len(set(qwords))
            )
            if holders != expect:
                problems.append(f"{where}: words occur in {holders}, expected {expect}")

        elif cat == "name":
            if not expect:
                problems.append(f"{where}: expects nothing")
                continue
            qset = (set(words(text)) | set(words(CAMEL_RE.sub(" ", text)))) - STOP_WORDS
            by_name = sorted(r for r, n in notes.items() if qset <= set(n.path_words) | set(words(r)))
            if by_name != sorted(expect):
                problems.append(f"{where}: name matches {by_name}, expected {sorted(expect)}")
            for t in targets:
                inside = sorted(qset & set(t.words))
                if inside:
                    problems.append(f"{where}: notes/{t.rel} contains {inside} in its text")
            by_text = sorted(r for r, n in notes.items() if qset <= set(n.words))
            if by_text:
                problems.append(f"{where}: text of {by_text} contains all the query words")

        elif cat == "normalisation":
            needle = words(text)
            if len(needle) != 1:
                problems.append(f"{where}: use a single word")
                continue
            word = needle[0]
            holders = sorted(r for r, n in notes.items() if word in n.words or word + "s" in n.words)
            if holders != sorted(expect) or not expect:
                problems.append(f"{where}: word occurs in {holders}, expected {sorted(expect)}")
            raw_hit = any(word in WORD_RE.findall(t.raw.lower()) for t in targets)
            if raw_hit:
                # Plain word: there must be a hard negative that merely starts with it.
                traps = sorted(
                    r
                    for r, n in notes.items()
                    if r not in expect and any(w.startswith(word) and w != word for w in n.words)
                )
                if not traps:
                    problems.append(f"{where}: no note holds a longer word starting with it")
            # else: the target only matches after NFKC (ligature, full width): as intended.

        elif cat in ("nonsense", "absent"):
            if expect:
                problems.append(f"{where}: {cat} queries must expect []")
            for rel, note in notes.items():
                shared = clashes(qwords, note.all_words)
                if shared:
                    problems.append(f"{where}: shares {shared} with notes/{rel}")

    for rel, note in notes.items():
        if note.group == "english" and paraphrase_targets[rel] != 1:
            problems.append(f"note {rel!r}: {paraphrase_targets[rel]} paraphrase queries, want exactly 1")
        if note.group == "korean" and korean_paraphrase_targets[rel] != 1:
            problems.append(f"note {rel!r}: {korean_paraphrase_targets[rel]} korean-paraphrase queries, want exactly 1")
    return problems, by_category


def main() -> int:
    notes = load_notes()
    queries = json.loads(QUERIES_FILE.read_text(encoding="utf-8"))
    problems, by_category = check(notes, queries)

    groups = Counter(n.group for n in notes.values())
    print(
        f"notes: {len(notes)} files  (English {groups['english']}, Korean {groups['korean']}, "
        f"name/normalisation extras {groups['extra']})"
    )
    print()
    print(f"{'category':<20}{'queries':>8}")
    print("-" * 28)
    for cat in CATEGORIES:
        print(f"{cat:<20}{by_category[cat]:>8}")
    print("-" * 28)
    print(f"{'total':<20}{sum(by_category.values()):>8}")
    print()
    if problems:
        print(f"{len(problems)} violation(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("OK: no violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
