"""Written language: how text and queries are normalised, split into words and matched.

Keyword search, snippets, file names and answers share these rules, so what is
found is exactly what is highlighted:

* Text and queries are compared in NFKC form, case-folded (:func:`fold`): the
  PDF ligature "ﬁ" is "fi", full-width "ＴＯＫＹＯ" is "tokyo", "Straße" is
  "strasse", and accents on Latin letters are dropped ("café" is "cafe").
* In scripts that separate words with spaces, a typed word matches a word with
  the same stem (the English Snowball stemmer): "run" finds "running" and
  "runs"; "star" finds "stars" but not "started" or "starboard".  A word typed
  with a trailing ``*`` is a prefix: "recei*" finds "receipt".
* Chinese, Japanese, Korean, Thai, Lao, Khmer and Burmese are matched as
  substrings: their words are not separated by spaces or, in Korean, carry
  particles ("임종석이" is searched as "임종석").
* A typed word made of several parts ("IMG_4242", "e-mail") or a "quoted
  phrase" is a phrase: its parts must follow each other.

The word index holds each word's *key* (folded, accents dropped, stemmed) so
that SQLite's FTS5 compares keys with keys; :func:`find_terms` applies the same
keys to a passage to mark what matched.
"""

from __future__ import annotations

import os
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import regex

# English words too common to say what a question or query is about.
STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't
    down during each either else ever few for from further get got had hadn't has hasn't have haven't having
    he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into
    is isn't it it's its itself just let's like may me might mine more most much must mustn't my myself no nor not
    now of off on once only or other ought our ours ourselves out over own please same shall shan't she she'd
    she'll she's should shouldn't so some such tell than that that's the their theirs them themselves then there
    there's these they they'd they'll they're they've this those through to too under until up upon us very
    was wasn't we we'd we'll we're we've were weren't what what's when when's where where's whether which while
    who who's whom whose why why's will with won't would wouldn't yet you you'd you'll you're you've your yours
    yourself yourselves s t d ll m re ve""".split()
)
# Korean particles (josa) that attach to the end of a word, longest first:
# "서울에서" is the word "서울" with "에서".
KOREAN_PARTICLES = tuple(
    sorted(
        """에서는 에서도 으로는 으로도 에게서 에게는 한테서 까지는 부터는 이라고 라고 에서 에게 한테 으로 부터 까지 하고 이랑 처럼
    보다 마다 밖에 이나 이든 은 는 이 가 을 를 의 에 도 와 과 로 만 랑 나""".split(),
        key=len,
        reverse=True,
    )
)

# Letters, digits and combining marks; "_", "-", "." and spaces separate words.
_WORD_RE = regex.compile(r"[\p{L}\p{N}\p{M}]+")
# Scripts written without spaces between words (or, for Hangul, with particles
# glued to them): matched as substrings.
_NO_SPACE = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_SEGMENT_RE = regex.compile(rf"[{_NO_SPACE}]+|[^{_NO_SPACE}]+")
_NO_SPACE_RE = regex.compile(rf"[{_NO_SPACE}]")
# Where a name splits into parts: "QuarterlyReport" -> Quarterly Report, "IMG4242" -> IMG 4242.
_CAMEL_RE = regex.compile(r"\p{Lu}+(?=\p{Lu}\p{Ll})|\p{Lu}?\p{Ll}+|\p{Lu}+|\p{N}+|[^\p{Lu}\p{Ll}\p{N}]+")
_QUOTED_RE = regex.compile(r"[\"“”„«»]([^\"“”„«»]+)[\"“”„«»]")
_EDGE_PUNCTUATION = "\"'“”‘’«»()[]{}<>,.;:!?^+-~|&=`"


def is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3"


def strip_particle(word: str) -> str:
    for particle in KOREAN_PARTICLES:
        if word.endswith(particle) and len(word) > len(particle):
            return word[: -len(particle)]
    return word


def fold(text: str) -> str:
    """``text`` in the form that is compared: NFKC, case-folded (and NFKC again, as case folding may need)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def has_words(text: str) -> bool:
    """Whether ``text`` holds a letter or digit at all (``***`` and ``(((`` do not)."""
    return _WORD_RE.search(text) is not None


def is_no_space_script(text: str) -> bool:
    """Whether ``text`` holds a character of a script matched as substrings (CJK, Thai, ...)."""
    return _NO_SPACE_RE.search(text) is not None


def _strip_latin_accents(word: str) -> str:
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFD", word)
    if any(ord(ch) >= 0x250 and unicodedata.category(ch) != "Mn" for ch in decomposed):
        return word  # not (only) Latin: its marks may be letters' essential parts
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn"))


_stemmers = threading.local()


def _stem_ascii(word: str) -> str:
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        import snowballstemmer

        stemmer = _stemmers.english = snowballstemmer.stemmer("english")
    return stemmer.stemWord(word)


@lru_cache(maxsize=200_000)
def word_key(word: str) -> str:
    """The key of one word: folded, Latin accents dropped, English words stemmed ("Running" -> "run")."""
    folded = _strip_latin_accents(fold(word))
    if folded.isascii() and any(ch.isalpha() for ch in folded):
        stem = _stem_ascii(folded)
        # "mining" would become "mine", the pronoun: a word is never stemmed into a stop word.
        return folded if stem in STOP_WORDS and folded not in STOP_WORDS else stem
    return folded


# -- splitting text ----------------------------------------------------------------


class Word(NamedTuple):
    """One word of a text: its span in the original text and its key (spaced scripts only)."""

    start: int
    end: int
    key: str


class Run(NamedTuple):
    """A run of a no-space script (CJK, Thai, ...) in a text: its span and its folded form."""

    start: int
    end: int
    folded: str


def split_text(text: str) -> tuple[list[Word], list[Run]]:
    """The words of ``text`` (with keys) and its runs of no-space scripts, in order, with their spans."""
    words: list[Word] = []
    runs: list[Run] = []
    for match in _WORD_RE.finditer(text):
        piece = match.group()
        if _NO_SPACE_RE.search(piece) is None:  # most words: one segment, no CJK
            words.append(Word(match.start(), match.end(), word_key(piece)))
            continue
        base = match.start()
        for segment in _SEGMENT_RE.finditer(piece):
            start, end = base + segment.start(), base + segment.end()
            part = segment.group()
            if _NO_SPACE_RE.match(part):
                runs.append(Run(start, end, fold(part)))
            else:
                words.append(Word(start, end, word_key(part)))
    return words, runs


def index_words(text: str | None) -> str:
    """What the word index stores for ``text``: the keys of its spaced-script words, space-separated."""
    if not text:
        return ""
    return " ".join(w.key for w in split_text(text)[0])


# -- queries -----------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One thing a query asks the text to contain.

    ``kind`` is ``"word"`` (one key), ``"phrase"`` (keys that must follow
    each other) or ``"substring"`` (folded text of a no-space script, found
    anywhere).  ``prefix`` makes the last key a prefix.  ``stop`` marks an
    English stop word, matched only when nothing better is left to match.
    """

    typed: str
    kind: str
    keys: tuple[str, ...]
    prefix: bool = False
    stop: bool = False

    def fts_words(self) -> str:
        """This term as an FTS5 query over the word index (words and phrases only)."""
        quoted = '"' + " ".join(self.keys) + '"'
        return quoted + " *" if self.prefix else quoted


_POSSESSIVE_RE = regex.compile(r"(?<=\p{L})['’]s$", regex.IGNORECASE)


def _terms_of_piece(typed: str, prefix: bool, into: list[Term]) -> None:
    # "Margaret's husband" asks about Margaret: the possessive is not a word to find.
    bare = _POSSESSIVE_RE.sub("", typed) if not prefix else typed
    segments = [
        (s.group(), bool(_NO_SPACE_RE.match(s.group())))
        for m in _WORD_RE.finditer(bare)
        for s in _SEGMENT_RE.finditer(m.group())
    ]
    keys: list[str] = []
    for n, (piece, no_space) in enumerate(segments):
        if not no_space:
            keys.append(word_key(piece))
            continue
        folded = fold(piece)
        if is_hangul(folded[-1]):
            if n > 0 and folded in KOREAN_PARTICLES:
                continue  # "iPhone으로": the particle of the word before it
            stem = strip_particle(folded)
            if len(stem) >= 2:
                folded = stem  # "서울에서" -> "서울"
        into.append(Term(typed, "substring", (folded,)))
    if not keys:
        return
    last_prefix = prefix and not segments[-1][1]
    if last_prefix:
        # A prefix is matched against keys as typed, not stemmed ("recei*", not "recei" stemmed).
        keys[-1] = _strip_latin_accents(fold(_WORD_RE.findall(typed)[-1]))
    if len(keys) == 1:
        stop = not last_prefix and _strip_latin_accents(fold(typed.strip("*"))) in STOP_WORDS
        into.append(Term(typed, "word", (keys[0],), prefix=last_prefix, stop=stop))
    else:
        stop = fold(typed).replace("’", "'") in STOP_WORDS  # "don't", "it's"
        into.append(Term(typed, "phrase", tuple(keys), prefix=last_prefix, stop=stop))


def parse_query(text: str) -> list[Term]:
    """The terms of a typed query, in order, without repeats.

    Quotes, brackets, ``AND``, ``*`` in the middle or SQL are read as plain
    words; only a trailing ``*`` (prefix) and "double quotes" (phrase) mean
    something.  Never raises.
    """
    text = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in text)
    terms: list[Term] = []
    for quoted in _QUOTED_RE.finditer(text):
        _terms_of_piece(quoted.group(1).strip(), False, terms)
    rest = _QUOTED_RE.sub(" ", text)
    for raw in rest.split():
        word = raw.strip(_EDGE_PUNCTUATION)
        prefix = word.endswith("*") and len(word.rstrip("*")) >= 2
        word = word.rstrip("*").strip(_EDGE_PUNCTUATION) if prefix else word.strip("*" + _EDGE_PUNCTUATION)
        if word:
            _terms_of_piece(word + ("*" if prefix else ""), prefix, terms)
    unique: dict[tuple, Term] = {}
    for term in terms:
        unique.setdefault((term.kind, term.keys, term.prefix), term)
    return list(unique.values())


def content_terms(terms: Sequence[Term]) -> list[Term]:
    """The terms worth matching: stop words left out, unless nothing else is left."""
    kept = [t for t in terms if not t.stop]
    return kept or list(terms)


def typed_words(text: str) -> list[str]:
    """The words of a typed query, split on spaces with outer punctuation removed (for display)."""
    out: list[str] = []
    text = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in text)
    for raw in text.split():
        word = raw.strip(_EDGE_PUNCTUATION + "*")
        if word and word not in out:
            out.append(word)
    return out


# -- matching ----------------------------------------------------------------------


def find_terms(
    text: str | None, terms: Sequence[Term], split: tuple[list[Word], list[Run]] | None = None
) -> dict[int, list[tuple[int, int]]]:
    """Where each term occurs in ``text``: ``{term index: [(start, end), ...]}`` for the terms found.

    Spans are character offsets into ``text`` as given (not folded), so they
    can be marked in what is shown.
    """
    if not text or not terms:
        return {}
    if split is None and _plain_for_search(text):
        return _find_terms_plain(text, terms)
    words, runs = split if split is not None else split_text(text)
    keys = [w.key for w in words]
    found: dict[int, list[tuple[int, int]]] = {}
    for n, term in enumerate(terms):
        spans: list[tuple[int, int]] = []
        if term.kind == "substring":
            needle = term.keys[0]
            for run in runs:
                at = run.folded.find(needle)
                while at >= 0:
                    if len(run.folded) == run.end - run.start:  # folding kept the length: exact span
                        spans.append((run.start + at, run.start + at + len(needle)))
                    else:
                        spans.append((run.start, run.end))
                        break
                    at = run.folded.find(needle, at + 1)
        else:
            want = term.keys
            width = len(want)
            for i in range(len(keys) - width + 1):
                if keys[i : i + width - 1] != list(want[:-1]):
                    continue
                last = keys[i + width - 1]
                if last == want[-1] or (term.prefix and last.startswith(want[-1])):
                    spans.append((words[i].start, words[i + width - 1].end))
        if spans:
            found[n] = spans
    return found


# A letter, digit or mark of a spaced script: what words of spaced scripts are made of.
_SPACED_CHAR = rf"(?:(?![{_NO_SPACE}])[\p{{L}}\p{{N}}\p{{M}}])"
_SPACED_WORD_RE = regex.compile(rf"{_SPACED_CHAR}+")
# Latin letters with diacritics (Latin-1 Supplement to Latin Extended Additional): their keys
# drop the accent, so a word's key is then not a piece of its case-folded form.
_ACCENTED_LATIN_RE = regex.compile(r"[\u00c0-\u024f\u1e00-\u1eff]")
_PROBES: dict[str, regex.Pattern[str]] = {}


def _plain_for_search(text: str) -> bool:
    """Whether case folding alone gives ``text``'s folded form, letter for letter (most text does)."""
    return (
        _ACCENTED_LATIN_RE.search(text) is None
        and unicodedata.is_normalized("NFKC", text)
        and len(text.casefold()) == len(text)
    )


def _probe(start: str) -> regex.Pattern[str]:
    pattern = _PROBES.get(start)
    if pattern is None:
        if len(_PROBES) > 10_000:
            _PROBES.clear()
        pattern = _PROBES[start] = regex.compile(rf"(?<!{_SPACED_CHAR}){regex.escape(start)}{_SPACED_CHAR}*")
    return pattern


def _find_terms_plain(text: str, terms: Sequence[Term]) -> dict[int, list[tuple[int, int]]]:
    """:func:`find_terms` for text whose folded form is its case-folded form, position for position.

    Instead of keying every word of a long passage, only the words that begin like a term's
    key are keyed (a stem is the word but for its last letters): the same answer, found in a
    fraction of the time, which matters because search judges every candidate passage.
    """
    low = text.casefold()
    found: dict[int, list[tuple[int, int]]] = {}
    for n, term in enumerate(terms):
        spans: list[tuple[int, int]] = []
        if term.kind == "substring":
            needle = term.keys[0]
            at = low.find(needle)
            while at >= 0:
                spans.append((at, at + len(needle)))
                at = low.find(needle, at + 1)
        else:
            keys = term.keys
            first = keys[0]
            single_prefix = term.prefix and len(keys) == 1
            start = first if single_prefix else first[: max(1, min(len(first) - 1, 4))]
            for match in _probe(start).finditer(low):
                if not _key_fits(text[match.start() : match.end()], first, single_prefix):
                    continue
                end = match.end()
                for i, key in enumerate(keys[1:], start=1):
                    following = _SPACED_WORD_RE.search(low, end)  # the next word; only separators between
                    if following is None:
                        break
                    if not _key_fits(
                        text[following.start() : following.end()], key, term.prefix and i == len(keys) - 1
                    ):
                        break
                    end = following.end()
                else:
                    spans.append((match.start(), end))
        if spans:
            found[n] = spans
    return found


def _key_fits(word: str, key: str, prefix: bool) -> bool:
    word_k = word_key(word)
    return word_k.startswith(key) if prefix else word_k == key


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching spans joined, in order."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# -- names -------------------------------------------------------------------------


def _name_parts(name: str) -> list[str]:
    """Words of one file or folder name: each run, then its camel-case and letter/digit parts."""
    runs = _WORD_RE.findall(name)
    parts = list(runs)
    for run in runs:
        pieces = [p for p in _CAMEL_RE.findall(run) if _WORD_RE.fullmatch(p)]
        if len(pieces) > 1:
            parts += pieces
    return parts


def name_folders(path: str, root: str | None) -> list[str]:
    """The names of the folders that say where a file is: from its library folder down to its parent.

    Without a library folder, the parent's name only.  Folders above the one a
    person added (``/home``, the user name) would make every file match.
    """
    parent = os.path.dirname(path)
    if not root or not (parent == root or parent.startswith(root.rstrip(os.sep) + os.sep)):
        name = os.path.basename(parent)
        return [name] if name else []
    top = os.path.basename(root.rstrip(os.sep))
    inner = os.path.relpath(parent, root)
    folders = [top] if top else []
    if inner != ".":
        folders += [p for p in inner.split(os.sep) if p]
    return folders


def name_index(path: str, root: str | None) -> tuple[str, str]:
    """What the name index stores for a file: (word keys of its name and folders, their folded names).

    The file name counts without its extension; folders as :func:`name_folders` says.
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    names = [stem, *name_folders(path, root)]
    keys: list[str] = []
    for name in names:
        for part in _name_parts(name):
            keys += [w.key for w in split_text(part)[0]]
    return " ".join(keys), " / ".join(fold(n) for n in names)


def squashed(text: str) -> str:
    """Letters and digits of ``text``, folded, nothing between them: "IMG_4242" and "img 4242" agree."""
    return "".join(_WORD_RE.findall(_strip_latin_accents(fold(text))))


def name_matches(path: str, root: str | None, query: str) -> str | None:
    """``"file"`` when ``query`` spells the file's name, ``"folder"`` when it spells one of its folders, else None.

    Separators and case do not matter: "IMG 4242" spells IMG_4242.jpg and
    "quarterly report draft" spells QuarterlyReportDraft.md.
    """
    wanted = squashed(query)
    if len(wanted) < 2:
        return None
    if squashed(os.path.splitext(os.path.basename(path))[0]) == wanted:
        return "file"
    if any(squashed(folder) == wanted for folder in name_folders(path, root)):
        return "folder"
    return None
