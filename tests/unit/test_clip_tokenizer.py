"""The torch-free CLIP tokenizer gives open_clip's tokens, token for token."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest

from engine.models.clip import clip_model_config
from engine.models.clip_tokenizer import (
    ClipTokenizer,
    TokenizerUnavailable,
    clip_tokenizer,
    plain_bpe_model,
    vocabulary_file,
)
from tests.conftest import ROOT

PHRASES = [
    "",
    " ",
    "\n\t  \r\n",
    "a photo of a dog",
    "A Photo Of A DOG",
    "Don't you think it's the cat's toy? I'd've said so, we'll see, they're here.",
    "receipt #4471 — $12.50 (paid)",
    "birthday cake with candles!!!",
    "해질녘의 도시 풍경",
    "여권 만료일은 언제인가요?",
    "東京タワーの夜景",
    "北京烤鸭",
    "Ελληνικά γράμματα",
    "Привет, мир",
    "مرحبا بالعالم ١٢٣",
    "emoji 🎉🐶🏖️👨‍👩‍👧 mixed",
    "🙂",
    "&amp; &lt;b&gt;bold&lt;/b&gt; &amp;amp; &quot;quoted&quot; &#39;x&#39;",
    "ﬁancé café naïve Œuvre Straße",
    "e\u0301 composed vs é",
    "\u3000full\u3000width\u3000space",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "mojibake: Ã©tÃ© â€œquotedâ€\x9d",
    "<start_of_text> inside <end_of_text> text",
    "numbers 1234567890 3.14159 1,000,000 2021-03-04",
    "___---...!!!???",
    "http://example.com/path?query=1&b=2",
    "user@example.com",
    "C++ and C# and .NET",
    "tabs\tand\nnewlines\r\nmixed",
    "x" * 300,
    "word " * 200,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "ß ẞ İ ı ǅ ﬀ",
    "\x00\x01 control \x7f chars",
    "zero\u200bwidth\u200djoiner",
]


def generated_strings(count: int) -> list[str]:
    """Seeded random strings mixing scripts, emoji, punctuation, entities and whitespace."""
    pieces = [
        "the", "Photo", "of", "a", "DOG", "beach", "'s", "'ll", "don't", "2021", "7", "3.5", "$", "%", "...",
        "!!", "?", "—", "–", "«»", "“quoted”", "&amp;", "&lt;", "&#233;", "여권", "사진", "東京", "猫", "カメラ",
        "Привет", "αβγ", "עברית", "हिन्दी", "🎉", "🐶", "👍🏽", "🇰🇷", "\u3000", "\t", "\n", "  ", "é", "ﬁ",
        "Ⅻ", "①", "½", "ｱ", "～", "_", "-", "/", "@", "#hashtag", "CamelCaseWord", "snake_case", "x86_64",
    ]  # fmt: skip
    rng = np.random.default_rng(20240611)
    out = []
    for _ in range(count):
        n = int(rng.integers(1, 40 if rng.random() < 0.9 else 150))
        joiners = rng.choice(["", " ", " ", " ", "  "], size=n)
        out.append("".join(str(rng.choice(pieces)) + str(j) for j in joiners))
    return out


@pytest.fixture(scope="module")
def open_clip_tokenizer():
    import open_clip

    return open_clip.get_tokenizer("ViT-B-32")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return PHRASES + generated_strings(300)


def test_same_tokens_as_open_clip(open_clip_tokenizer, texts):
    ours = clip_tokenizer()(texts)
    theirs = open_clip_tokenizer(texts).numpy()
    assert ours.dtype == np.int64 and ours.shape == (len(texts), 77)
    mismatched = [t for t, a, b in zip(texts, ours, theirs, strict=True) if not np.array_equal(a, b)]
    assert mismatched == []
    assert len(texts) >= 300


def test_same_counts_as_open_clip_without_truncation(open_clip_tokenizer, texts):
    ours = clip_tokenizer()
    for text in texts:
        assert ours.encode(text) == open_clip_tokenizer.encode(text), text


def test_long_text_is_cut_keeping_the_end_token():
    tokenizer = clip_tokenizer()
    row = tokenizer("word " * 200)[0]
    assert row[0] == tokenizer.start_id and row[76] == tokenizer.end_id
    assert np.count_nonzero(row) == 77
    empty = tokenizer("")[0]
    assert empty[:2].tolist() == [tokenizer.start_id, tokenizer.end_id] and not empty[2:].any()
    assert tokenizer(["a", "b c"], context_length=5).shape == (2, 5)
    assert tokenizer("one two three four five six", context_length=4)[0].tolist()[-1] == tokenizer.end_id


def test_which_models_use_the_plain_tokenizer():
    assert plain_bpe_model("ViT-B-32", clip_model_config("ViT-B-32"))
    assert plain_bpe_model("test-tiny", clip_model_config("test-tiny"))
    assert not plain_bpe_model("xlm-roberta-base-ViT-B-32", clip_model_config("xlm-roberta-base-ViT-B-32"))
    assert not plain_bpe_model("ViT-B-16-SigLIP", clip_model_config("ViT-B-16-SigLIP"))
    config = {"text_cfg": {"tokenizer_kwargs": {"clean": "canonicalize"}}}
    assert not plain_bpe_model("my-clip", config)
    assert plain_bpe_model("my-clip", {"text_cfg": {"tokenizer_kwargs": {"clean": "lower"}}})


def test_a_missing_or_damaged_vocabulary_is_reported(tmp_path):
    with pytest.raises(TokenizerUnavailable, match="cannot be read"):
        ClipTokenizer(tmp_path / "nothing.txt.gz")
    short = tmp_path / "short.txt.gz"
    with gzip.open(short, "wt", encoding="utf-8") as f:
        f.write("header\na b\nc d\n")
    with pytest.raises(TokenizerUnavailable, match="damaged"):
        ClipTokenizer(short)


def test_tokenizing_imports_neither_torch_nor_open_clip():
    found = vocabulary_file()
    assert found is not None and found.name == "bpe_simple_vocab_16e6.txt.gz"
    code = (
        "import sys\n"
        "from engine.models.clip_tokenizer import clip_tokenizer\n"
        "print(clip_tokenizer()('a dog on a beach')[0, :3].tolist())\n"
        "print(sorted(m for m in ('torch', 'open_clip', 'transformers', 'ftfy') if m in sys.modules))\n"
        "clip_tokenizer()('caf\\u00e9 &amp; cr\\u00e8me')\n"  # text ftfy may repair: now it is used
        "print('ftfy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    first, loaded, repaired = done.stdout.splitlines()
    # Plain ASCII needs no repair: ftfy (a tenth of a second to import) is left out.
    assert first == "[49406, 320, 1929]" and loaded == "[]" and repaired == "True"
