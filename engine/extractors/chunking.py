"""Split text into overlapping spans that each fit a model's token limit.

:func:`chunk_text` cuts documents (by default for CLIP's 77-token text context;
indexing passes the text model's tokenizer and passage size);
:func:`group_segments` joins a recording's transcript segments into passages.

CLIP's tokenizer first cuts text with a regular expression into "words" (runs
of letters, single digits, runs of punctuation, English contractions) and then
BPE-encodes each word on its own.  So the token count of a span is the sum of
its words' counts, and a word's count can be cached: chunking a megabyte costs
one regular-expression pass plus one BPE call per distinct word.

A word longer than a whole chunk (Chinese or Japanese prose without
punctuation, a URL, a base64 blob) is cut between characters, each costing its
UTF-8 byte count: BPE never makes more tokens than bytes, so the sum stays an
upper bound without re-running BPE on every candidate span.

Where the sum may be wrong (text that CLIP's cleaning step ``ftfy`` or HTML
unescaping can change: accented Latin, fullwidth forms, curly quotes, "&",
control characters, text not in NFC), the chosen span is re-counted with the
real tokenizer and shortened until it fits.  Every span returned therefore fits.
"""

from __future__ import annotations

import threading
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable

import regex

TokenLen = Callable[[str], int]

# CLIP's pre-tokenizer pattern (open_clip.tokenizer.SimpleTokenizer.pat) without
# its special tokens.  Matching it on the original text gives the same words as
# CLIP's match on the lower-cased text, with their positions.
_WORD_RE = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
# Text made only of these characters passes CLIP's cleaning (ftfy, HTML
# unescaping, lower-casing) unchanged when it is NFC-normalised, so the sum of
# its words' counts is exact: printable ASCII except "&", tab and newlines,
# CJK punctuation (not U+3000, which ftfy turns into a space), kana, CJK
# ideographs, Hangul syllables.  Anything else is re-counted with the tokenizer.
_CLIP_STABLE_RE = regex.compile(
    r"[^\t\n\r\x20-\x25\x27-\x7e\u3001-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3]"
)
_SENTENCE_END_CHARS = frozenset(".!?;…。！？；؟।")
_CLOSERS = frozenset("\"')]}»”’」』）】")
_OPENERS = frozenset("\"'([{«“‘「『（【<#*-•")
# Full-width sentence ends need no following space to end a sentence.
_CJK_SENTENCE_END = frozenset("。！？；")

# Boundary ranks: where we would rather end a chunk.
_MID_WORD, _WORD, _LINE, _SENTENCE, _PARAGRAPH, _END = 0, 1, 2, 3, 4, 5


class ClipTokenCounter:
    """Counts CLIP BPE tokens (without start/end tokens).

    Builds open_clip's ``SimpleTokenizer`` on first use (it reads the 1.3 MB BPE
    vocabulary; importing open_clip also imports torch, a few seconds once).
    Calling the counter gives the exact count of any text;
    :meth:`count_word` is the fast, cached count of one pre-tokenizer word.
    """

    _MAX_CACHE = 500_000

    def __init__(self) -> None:
        self._tokenizer = None
        self._lock = threading.Lock()
        self._word_cache: dict[str, int] = {}

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    from open_clip.tokenizer import SimpleTokenizer

                    self._tokenizer = SimpleTokenizer()
        return self._tokenizer

    def __call__(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def count_word(self, word: str) -> int:
        """BPE tokens of one word as matched by CLIP's pattern, skipping CLIP's text cleaning.

        Exact for printable ASCII words; for other words an estimate that
        :func:`chunk_text` checks against the exact count of the whole span.
        Skipping ``ftfy`` here is what makes chunking fast.
        """
        n = self._word_cache.get(word)
        if n is None:
            tok = self.tokenizer
            n = 0
            for piece in tok.pat.findall(word.lower()):
                encoded = "".join(tok.byte_encoder[b] for b in piece.encode("utf-8"))
                n += tok.bpe(encoded).count(" ") + 1
            if len(self._word_cache) >= self._MAX_CACHE:
                self._word_cache.clear()
            self._word_cache[word] = n
        return n


_default_counter: ClipTokenCounter | None = None
_default_lock = threading.Lock()


def clip_token_counter() -> ClipTokenCounter:
    """The process-wide CLIP token counter (created on first call)."""
    global _default_counter
    if _default_counter is None:
        with _default_lock:
            if _default_counter is None:
                _default_counter = ClipTokenCounter()
    return _default_counter


def chunk_text(
    text: str,
    max_tokens: int = 75,
    overlap_tokens: int = 15,
    token_len: TokenLen | None = None,
) -> list[tuple[int, int]]:
    """Split ``text`` into overlapping ``(char_start, char_end)`` spans of at most ``max_tokens``.

    ``text[char_start:char_end]`` of every span starts and ends on a non-space
    character; together the spans cover every non-space character, in order,
    and consecutive spans share about ``overlap_tokens`` tokens of text.  A span
    ends, in order of preference, at a paragraph break, a sentence end, a line
    break or a word boundary, as long as it stays at least half full; text with
    no spaces (Chinese, Japanese) is cut between characters when it must be.

    ``token_len(piece) -> int`` counts tokens; by default CLIP's BPE tokenizer,
    so with the default 75 every span fits CLIP's 77-token context together
    with its start and end tokens.  A custom ``token_len`` is applied to each
    word and then to each candidate span, which is shortened until it fits.

    Returns ``[]`` for text that is empty or only whitespace.  Raises
    ``ValueError`` for ``max_tokens < 1`` or an overlap not in ``[0, max_tokens)``.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, not {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must be in [0, {max_tokens}), not {overlap_tokens}")
    counter = token_len if token_len is not None else clip_token_counter()
    default_counter = isinstance(counter, ClipTokenCounter)

    if isinstance(counter, ClipTokenCounter):
        starts, ends, costs = _units(text, max_tokens, counter.count_word, _utf8_len)
    else:
        word_len = _cached(counter)
        starts, ends, costs = _units(text, max_tokens, word_len, word_len)
    n = len(starts)
    if n == 0:
        return []
    cum = [0] * (n + 1)
    running = 0
    for i, c in enumerate(costs):
        running += c
        cum[i + 1] = running
    rank = _boundary_ranks(text, starts, ends)
    min_fill = max(1, max_tokens // 2)

    def fits(s: int, e: int) -> bool:
        piece = text[starts[s] : ends[e - 1]]
        if default_counter and _is_clean_for_clip(piece):
            return True  # the per-word sum is exact (or an upper bound) and already <= max_tokens
        return counter(piece) <= max_tokens

    def choose_end(s: int, e_max: int, min_end: int) -> int:
        if e_max >= n:
            return n
        best, best_rank = e_max, -1
        e = e_max
        while e > s and e >= min_end:
            if e < e_max and cum[e] - cum[s] < min_fill:
                break
            if rank[e] > best_rank:
                best, best_rank = e, rank[e]
                if best_rank >= _PARAGRAPH:
                    break
            e -= 1
        return best

    spans: list[tuple[int, int]] = []
    s = 0
    prev_end = 0
    while True:
        e_max = bisect_right(cum, cum[s] + max_tokens, lo=s + 1) - 1
        if e_max <= s:
            e_max = s + 1  # a single piece over the limit (tiny max_tokens): emit it alone
        e = choose_end(s, e_max, prev_end + 1)
        while e > s + 1 and not fits(s, e):
            e = choose_end(s, e - 1, prev_end + 1)
        spans.append((starts[s], ends[e - 1]))
        if e >= n:
            break
        s = _next_start(text, starts, s, e, cum, rank, max_tokens, overlap_tokens)
        prev_end = e
    return spans


def _cached(token_len: TokenLen) -> TokenLen:
    """Per-call cache of a caller's counter: prose repeats its words many times."""
    cache: dict[str, int] = {}

    def count(word: str) -> int:
        n = cache.get(word)
        if n is None:
            n = cache[word] = token_len(word)
        return n

    return count


def _is_clean_for_clip(piece: str) -> bool:
    return _CLIP_STABLE_RE.search(piece) is None and unicodedata.is_normalized("NFC", piece)


def _utf8_len(ch: str) -> int:
    return len(ch.encode("utf-8"))


def _units(
    text: str, max_tokens: int, word_len: TokenLen, char_len: TokenLen
) -> tuple[list[int], list[int], list[int]]:
    """CLIP words with their spans and token counts; words over the limit cut per character."""
    starts: list[int] = []
    ends: list[int] = []
    costs: list[int] = []
    # BPE is quadratic in a word's length; a word this long (English runs about
    # four bytes a token) is cut without being counted whole.
    too_long = 4 * max_tokens
    for m in _WORD_RE.finditer(text):
        word = m.group()
        c = word_len(word) if len(word) == 1 or _utf8_len(word) <= too_long else max_tokens + 1
        if c <= max_tokens or len(word) == 1:
            starts.append(m.start())
            ends.append(m.end())
            costs.append(c)
            continue
        base = m.start()
        for offset, ch in enumerate(word):
            starts.append(base + offset)
            ends.append(base + offset + 1)
            costs.append(char_len(ch))
    return starts, ends, costs


def _boundary_ranks(text: str, starts: list[int], ends: list[int]) -> list[int]:
    """rank[i] says how good a place it is to end a chunk just before unit i."""
    n = len(starts)
    rank = [_MID_WORD] * (n + 1)
    rank[n] = _END
    for i in range(1, n):
        gap = text[ends[i - 1] : starts[i]]
        prev_last = text[ends[i - 1] - 1]
        if gap.count("\n") >= 2:
            rank[i] = _PARAGRAPH
            continue
        prev = text[starts[i - 1] : ends[i - 1]]
        if prev_last in _CJK_SENTENCE_END or (
            gap
            and (
                prev_last in _SENTENCE_END_CHARS
                or (prev_last in _CLOSERS and any(ch in _SENTENCE_END_CHARS for ch in prev))
            )
        ):
            rank[i] = _SENTENCE
        elif "\n" in gap:
            rank[i] = _LINE
        elif gap or not prev_last.isalnum() or not text[starts[i]].isalnum():
            # A space, or punctuation on either side ("，" and "、" in CJK have no space).
            rank[i] = _WORD
        # else: inside a word we had to cut, or between letters and digits ("abc1").
    return rank


def _next_start(
    text: str,
    starts: list[int],
    s: int,
    e: int,
    cum: list[int],
    rank: list[int],
    max_tokens: int,
    overlap_tokens: int,
) -> int:
    """First unit of the next chunk: about ``overlap_tokens`` back from ``e``, on a word start."""
    # Earliest start whose tail up to e stays within the overlap budget ...
    ns = bisect_left(cum, cum[e] - overlap_tokens, lo=s + 1, hi=e)
    # ... and that still leaves room for unit e, so the next chunk gets further.
    ns = max(ns, bisect_left(cum, cum[e + 1] - max_tokens, lo=s + 1, hi=e))
    # Start on a word, or on an opening bracket or quote, not on the trailing
    # comma or bracket of the previous clause; failing that, on any word boundary.
    for candidate in range(ns, e):
        if rank[candidate] >= _WORD:
            first = text[starts[candidate]]
            if first.isalnum() or first in _OPENERS:
                return candidate
    for candidate in range(ns, e):
        if rank[candidate] >= _WORD:
            return candidate
    return e


def group_segments(
    texts: list[str],
    times: list[tuple[float, float]],
    token_len: TokenLen,
    *,
    max_tokens: int,
    max_seconds: float,
) -> list[tuple[int, int]]:
    """Join consecutive transcript segments into passages: ``(first, last)`` segment indexes, inclusive.

    A passage takes segments while it stays within ``max_tokens`` tokens and
    ``max_seconds`` from its first segment's start; the next passage starts
    with the previous one's last segment (when that had three or more), so a
    sentence spoken across the cut is whole in one of them.  A segment longer
    than the limits is a passage of its own.  Every segment is in a passage.
    """
    n = len(texts)
    if n == 0:
        return []
    costs = [token_len(t) for t in texts]
    windows: list[tuple[int, int]] = []
    first = 0
    while first < n:
        last = first
        used = costs[first]
        while (
            last + 1 < n
            and used + costs[last + 1] <= max_tokens
            and times[last + 1][1] - times[first][0] <= max_seconds
        ):
            last += 1
            used += costs[last]
        windows.append((first, last))
        if last >= n - 1:
            break
        first = last if last > first + 1 else last + 1
    return windows
