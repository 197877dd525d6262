"""Auto-tags: CLIP's zero-shot guesses at what a photo shows, from an editable vocabulary.

Each tag is described by one or more phrases (``resources/autotags.txt``);
their CLIP text embeddings are averaged into one tag vector.  A photo's stored
image vector is compared with every tag vector, the similarities become
probabilities (a softmax at CLIP's own temperature, 100), and the photo gets
the tags whose probability reaches the threshold (at most :data:`MAX_TAGS`).

Tagging reads the vectors already in the store, so changing the vocabulary
or the threshold re-tags a library in seconds without encoding a photo again.
Auto-tags are stored apart from the user's own tags (``file_tags.source``);
one the user removes is remembered as rejected and never comes back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bundled import RESOURCES
from .errors import Cancelled, UsageError
from .stores import Store

DEFAULT_VOCABULARY = RESOURCES / "autotags.txt"
MAX_TAGS = 3
LOGIT_SCALE = 100.0  # CLIP's learned temperature, the same for every released model


@dataclass(frozen=True)
class Tag:
    name: str
    phrases: tuple[str, ...]


def read_vocabulary(path: str | Path | None = None) -> list[Tag]:
    """Tags from a vocabulary file (see ``resources/autotags.txt`` for the format).

    Raises :class:`UsageError` when the file cannot be read or holds no tag.
    """
    path = Path(path) if path else DEFAULT_VOCABULARY
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the auto-tag vocabulary {path}: {exc.strerror or exc}") from None
    tags: dict[str, Tag] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, described = line.partition(":")
        name = name.strip()
        if not name:
            continue
        phrases = tuple(p.strip() for p in described.split("|") if p.strip()) or (f"a photo of {name}",)
        tags.setdefault(name.lower(), Tag(name, phrases))
    if not tags:
        raise UsageError(f"the auto-tag vocabulary {path} has no tags in it")
    return list(tags.values())


class AutoTagger:
    """Tags image vectors with the vocabulary's names.

    ``clip`` embeds the phrases (once); ``threshold`` is the probability a tag
    needs.  ``signature`` identifies model + vocabulary + threshold: a photo
    tagged under another signature is tagged again.
    """

    def __init__(self, clip: Any, vocabulary: list[Tag], threshold: float = 0.2, max_tags: int = MAX_TAGS):
        if not 0.0 < threshold <= 1.0:
            raise UsageError(f"the auto-tag threshold must be between 0 and 1, not {threshold}")
        self.clip = clip
        self.vocabulary = vocabulary
        self.threshold = float(threshold)
        self.max_tags = int(max_tags)
        self._matrix: np.ndarray | None = None
        identity = getattr(clip, "identity", None)
        described = repr((identity, [(t.name, t.phrases) for t in vocabulary], self.threshold, self.max_tags))
        self.signature = hashlib.blake2b(described.encode("utf-8"), digest_size=12).hexdigest()

    def _tag_matrix(self) -> np.ndarray:
        if self._matrix is None:
            phrases = [p for t in self.vocabulary for p in t.phrases]
            emb = np.asarray(self.clip.encode_texts(phrases), np.float32)
            rows, at = [], 0
            for t in self.vocabulary:
                v = emb[at : at + len(t.phrases)].mean(axis=0)
                at += len(t.phrases)
                rows.append(v / (np.linalg.norm(v) or 1.0))
            self._matrix = np.stack(rows)
        return self._matrix

    def tag(self, vectors: np.ndarray) -> list[list[tuple[str, float]]]:
        """For each image vector, the (tag, probability) pairs that pass, most likely first."""
        if len(vectors) == 0:
            return []
        logits = LOGIT_SCALE * (np.asarray(vectors, np.float32) @ self._tag_matrix().T)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        out = []
        for row in probs:
            best = np.argsort(-row)[: self.max_tags]
            out.append([(self.vocabulary[i].name, round(float(row[i]), 4)) for i in best if row[i] >= self.threshold])
        return out


def autotag_library(
    store: Store,
    tagger: AutoTagger,
    *,
    on_progress: Callable[[int, int, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    batch: int = 512,
) -> int:
    """Tag every photo not yet tagged under ``tagger.signature``; returns how many photos were tagged.

    Each batch commits on its own, so a cancelled run keeps what it did.
    """
    total = store.count_photos_to_autotag(tagger.signature)
    done = 0
    while True:
        with store.snapshot():  # the photos and their vectors as one state (another process may be indexing)
            todo = store.photos_to_autotag(tagger.signature, limit=batch)
            vectors = store.vectors([item_id for _, item_id in todo]) if todo else None
        if not todo or vectors is None:
            break
        if should_cancel is not None and should_cancel():
            raise Cancelled(f"auto-tagging stopped after {done} of {total} photos")
        guesses = tagger.tag(vectors)
        with store.transaction():
            for (file_id, _), tags in zip(todo, guesses, strict=True):
                store.set_auto_tags(file_id, tags, tagger.signature)
            store.forget_unused_tags()
        done += len(todo)
        if on_progress is not None:
            on_progress(done, total, "auto-tagging photos")
    return done
