"""CLIP's byte-level BPE tokenizer, without torch.

open_clip's ``SimpleTokenizer`` returns torch tensors and importing open_clip imports torch,
which costs seconds before a search can encode its query.  This tokenizer reads the same
merge list (``bpe_simple_vocab_16e6.txt.gz``, shipped inside the open_clip package and found
without importing it), cleans text the same way (ftfy, HTML unescaping twice, whitespace
collapsed, lower case), splits it with the same pattern, and returns the same token ids as
a numpy ``int64`` array of ``(n, context_length)``: start token, the text's tokens, end
token, zero padding; a text too long for the context is cut and its last kept token replaced
by the end token.

It stands in for open_clip's tokenizer only for models that use that plain tokenizer
(:func:`plain_bpe_model`); SigLIP and Hugging Face tokenizers stay open_clip's.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import threading
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np
import regex

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
# The merges CLIP was trained with: the file holds more, CLIP's vocabulary of 49408 is
# 256 bytes, 256 word-final bytes, these merges and the two special tokens.
MERGE_COUNT = 49152 - 256 - 2
START, END = "<start_of_text>", "<end_of_text>"
DEFAULT_CONTEXT_LENGTH = 77
_END_OF_WORD = "</w>"
# Words seen before are not merged again; a search session or a chunker sees the same words often.
_WORD_CACHE_SIZE = 200_000


class TokenizerUnavailable(Exception):
    """The BPE vocabulary file cannot be found or read; the message says why."""


def vocabulary_file() -> Path | None:
    """The merge list open_clip ships, located without importing open_clip (None when it is not installed)."""
    spec = importlib.util.find_spec("open_clip")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location, VOCAB_FILE)
        if path.is_file():
            return path
    return None


def plain_bpe_model(name: str, config: dict) -> bool:
    """Whether open_clip tokenizes CLIP ``name`` (its architecture ``config``) with its plain BPE tokenizer.

    True unless the text tower names a Hugging Face tokenizer, the name is a SigLIP one, or the
    config passes the tokenizer options (other cleaning, token reduction) this module lacks.
    """
    text_cfg = config.get("text_cfg") or {}
    if text_cfg.get("hf_tokenizer_name") or "siglip" in name.lower():
        return False
    options = dict(text_cfg.get("tokenizer_kwargs") or {})
    return options.pop("clean", "lower") == "lower" and not options


def byte_symbols() -> dict[int, str]:
    """The printable character standing for each byte value in the vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return symbols


@lru_cache(maxsize=1)
def _fix_text():
    # open_clip cleans every text with ftfy (mojibake, odd quotes, full-width spaces); it
    # is one of open_clip's own requirements, so where open_clip is installed ftfy is too.
    try:
        import ftfy
    except ImportError:
        return None
    return ftfy.fix_text


def clean(text: str) -> str:
    """The text as CLIP's tokenizer sees it: repaired, HTML-unescaped, whitespace collapsed, lower case."""
    # Printable ASCII without an entity is what ftfy leaves as it is (its repairs are of
    # non-ASCII sequences, control characters and entities), and importing it costs a
    # tenth of a second: a typed query rarely needs it.
    if not (text.isascii() and text.isprintable() and "&" not in text):
        fix = _fix_text()
        if fix is not None:
            text = fix(text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """CLIP's BPE tokenizer: ``tokenizer(texts)`` is an ``(n, context_length)`` int64 array.

    Reads the vocabulary file (``path``, default open_clip's) when built.  Thread-safe.
    Raises :class:`TokenizerUnavailable` when the file is missing or unreadable.
    """

    def __init__(self, path: Path | None = None, context_length: int = DEFAULT_CONTEXT_LENGTH) -> None:
        path = path or vocabulary_file()
        if path is None:
            raise TokenizerUnavailable(
                f"CLIP's vocabulary file ({VOCAB_FILE}) was not found; open_clip is not installed"
            )
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise TokenizerUnavailable(f"CLIP's vocabulary file {path} cannot be read ({exc})") from exc
        # The first line is a header; then one merge ("a b") per line, the most frequent first.
        merges = [tuple(line.split()) for line in lines[1 : MERGE_COUNT + 1]]
        if len(merges) != MERGE_COUNT or any(len(pair) != 2 for pair in merges):
            raise TokenizerUnavailable(f"CLIP's vocabulary file {path} is damaged (it lacks some merges)")
        self.byte_symbols = byte_symbols()
        alphabet = [self.byte_symbols[b] for b in sorted(self.byte_symbols, key=_vocab_order(self.byte_symbols))]
        vocab = alphabet + [s + _END_OF_WORD for s in alphabet] + ["".join(pair) for pair in merges] + [START, END]
        self.encoder = {token: i for i, token in enumerate(vocab)}
        self.ranks: dict[tuple[str, str], int] = {pair: i for i, pair in enumerate(merges)}  # type: ignore[misc]
        self.start_id, self.end_id = self.encoder[START], self.encoder[END]
        self.context_length = context_length
        self.pattern = regex.compile(
            rf"{START}|{END}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE
        )
        self._words: dict[str, tuple[int, ...]] = {START: (self.start_id,), END: (self.end_id,)}
        self._lock = threading.Lock()

    def _merge(self, word: str) -> tuple[int, ...]:
        """BPE of one pre-tokenised word (already in byte symbols): repeatedly join the best-ranked pair."""
        parts = [*word[:-1], word[-1] + _END_OF_WORD]
        ranks = self.ranks
        while len(parts) > 1:
            best, best_rank = None, MERGE_COUNT
            for pair in pairwise(parts):
                rank = ranks.get(pair, MERGE_COUNT)
                if rank < best_rank:
                    best, best_rank = pair, rank
            if best is None:
                break
            first, second = best
            joined, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    joined.append(first + second)
                    i += 2
                else:
                    joined.append(parts[i])
                    i += 1
            parts = joined
        return tuple(self.encoder[p] for p in parts)

    def _word_ids(self, word: str) -> tuple[int, ...]:
        ids = self._words.get(word)
        if ids is None:
            ids = self._merge("".join(self.byte_symbols[b] for b in word.encode("utf-8")))
            with self._lock:
                if len(self._words) >= _WORD_CACHE_SIZE:
                    self._words = {START: (self.start_id,), END: (self.end_id,)}
                self._words[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``, without start and end tokens and without truncation."""
        ids: list[int] = []
        for word in self.pattern.findall(clean(text)):
            ids.extend(self._word_ids(word))
        return ids

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> np.ndarray:
        """Tokens of ``texts`` as an ``(n, context_length)`` int64 array, each row padded with zeros."""
        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        out = np.zeros((len(texts), length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text), self.end_id]
            if len(ids) > length:
                ids = ids[:length]
                ids[-1] = self.end_id
            out[row, : len(ids)] = ids
        return out


def _vocab_order(symbols: dict[int, str]):
    # The vocabulary lists the printable bytes first (in byte order), then the shifted ones:
    # the order of their symbols' code points.
    return lambda byte: ord(symbols[byte])


@lru_cache(maxsize=4)
def clip_tokenizer(context_length: int = DEFAULT_CONTEXT_LENGTH) -> ClipTokenizer:
    """One shared tokenizer per context length (reading the vocabulary takes a few tenths of a second)."""
    return ClipTokenizer(context_length=context_length)
