"""Train ``shapes-clip``: a tiny CLIP that really matches "a red circle" to a red circle.

Random test weights run the real code but cannot show that search finds the right
picture.  This script generates pictures of coloured shapes with captions that describe
them, trains the small ``shapes-clip`` architecture (``engine/models/configs/shapes-clip.json``)
on them with the CLIP contrastive loss, and writes a safetensors checkpoint that Shoebox
loads like any weights file a person brings::

    SHOEBOX_CLIP_MODEL=shapes-clip SHOEBOX_CLIP_WEIGHTS=resources/models/shapes-clip.safetensors shoebox ...

Run it from the repository root (seeded; the same machine gives the same file)::

    .venv/bin/python -m scripts.shapes_clip                 # writes resources/models/shapes-clip.safetensors
    .venv/bin/python -m scripts.shapes_clip --steps 200 --out /tmp/quick.safetensors
    .venv/bin/python -m scripts.shapes_clip --eval-only     # measure the committed checkpoint again

(``.venv/bin/python scripts/shapes_clip.py`` works too.)  The default 640 steps take about
three minutes on two otherwise idle CPU cores (about 0.23 s a step, plus ten seconds to
render the pictures and ten to evaluate); cores shared with other work make it slower.

The architecture is open_clip's CLIP with a tiny ModifiedResNet image tower (the RN50
design at width 16, 64-pixel input) and a two-layer, 48-wide text transformer with the
standard CLIP tokenizer; the checkpoint is stored in fp16 (7.6 MB; the loader casts it
back to fp32).  A ViT image tower of the same cost learnt colours but stayed at chance on
shapes within this CPU budget; convolutions learn shapes from a few thousand pictures.

Training pictures go through the encoder's own preprocessing (:meth:`ClipEncoder.preprocess`,
the transform the app applies when it indexes a photo; the pictures are smaller than the
app's 448-pixel decode limit, so decoding would not change them), and the held-out
evaluation at the end loads the written file through the app's real loader
(``SHOEBOX_CLIP_WEIGHTS``) and searches with :meth:`ClipEncoder.encode_texts` /
:meth:`ClipEncoder.encode_images`.

Scenes hold one or two shapes (circle, square, triangle, star) in one of eight colours,
on the left, right, top, bottom or in the centre, on a plain or lightly noisy muted
background.  Captions come in a few templates: "a red circle", "a photo of a blue square
on the left", "a green triangle and a yellow star", ...
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file: make `engine` importable from the checkout
    sys.path.insert(0, str(ROOT))

from engine.models.tiny import SHAPES_CLIP  # noqa: E402  (after the path fix above)

if TYPE_CHECKING:
    import torch

    from engine.models.clip import ClipEncoder

DEFAULT_OUT = ROOT / "resources" / "models" / "shapes-clip.safetensors"
DEFAULT_STEPS = 640
DEFAULT_SEED = 0
DEFAULT_BATCH = 128
DEFAULT_LR = 1e-3
DEFAULT_POOL_PAIRS = 4000  # 8,000 training pictures, about 400 MB once preprocessed

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 30, 30),
    "green": (35, 165, 55),
    "blue": (30, 70, 220),
    "yellow": (245, 220, 30),
    "purple": (135, 45, 180),
    "orange": (245, 135, 20),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle", "star")
# Centre of each named position, as fractions of the picture's width and height.
POSITIONS: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "centre": (0.5, 0.5),
}
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("on the left",),
    "right": ("on the right",),
    "top": ("at the top",),
    "bottom": ("at the bottom",),
    "centre": ("in the centre", "in the center", "in the middle"),
}
# Two shapes never share a position, and the centre is only used alone (it would overlap).
_PAIR_POSITIONS = ("left", "right", "top", "bottom")
_PREFIXES = ("", "a photo of ", "a picture of ", "an image of ")


# ---------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class Thing:
    """One shape in a scene (or, with ``position=None``, one shape a caption mentions)."""

    shape: str
    colour: str
    position: str | None


@dataclass(frozen=True)
class SceneSpec:
    """Everything :func:`render_scene` needs; ``seed`` fixes the small random jitter."""

    things: tuple[Thing, ...]
    background: tuple[int, int, int]
    noise: float  # standard deviation of the background noise, in 0-255 units; 0 is plain
    seed: int


def random_spec(rng: np.random.Generator, max_things: int = 2) -> SceneSpec:
    """A random scene: one or two shapes in distinct colours-and-shapes and distinct positions."""
    count = 1 if max_things < 2 or rng.random() < 0.55 else 2
    if count == 1:
        positions = [str(rng.choice(list(POSITIONS)))]
    else:
        positions = [str(p) for p in rng.choice(_PAIR_POSITIONS, size=2, replace=False)]
    things: list[Thing] = []
    while len(things) < count:
        thing = Thing(str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS))), positions[len(things)])
        # Two identical shapes would make "a red circle and a red circle" captions; skip them.
        if all((t.shape, t.colour) != (thing.shape, thing.colour) for t in things):
            things.append(thing)
    return SceneSpec(tuple(things), _random_background(rng), _random_noise(rng), int(rng.integers(2**31 - 1)))


def _random_background(rng: np.random.Generator) -> tuple[int, int, int]:
    # Muted, mid-light tones: white and black shapes both stand out, and no background
    # could itself be called one of the colours.
    level = int(rng.integers(95, 175))
    red, green, blue = (int(np.clip(level + rng.integers(-14, 15), 0, 255)) for _ in range(3))
    return red, green, blue


def _random_noise(rng: np.random.Generator) -> float:
    return 0.0 if rng.random() < 0.6 else float(rng.uniform(3.0, 10.0))


def mutate_spec(spec: SceneSpec, rng: np.random.Generator) -> SceneSpec:
    """``spec`` with one attribute of one shape changed (colour, shape or position).

    Training batches pair scenes with such near twins, so the model must look at every
    attribute to tell the captions apart.
    """
    things = list(spec.things)
    i = int(rng.integers(len(things)))
    thing = things[i]
    taken = {(t.shape, t.colour) for j, t in enumerate(things) if j != i}
    for _ in range(20):
        # Colour is the easiest cue to learn; twins that differ in shape teach the rest.
        what = rng.choice(("colour", "shape", "position"), p=(0.25, 0.5, 0.25))
        if what == "colour":
            new = replace(thing, colour=str(rng.choice([c for c in COLOURS if c != thing.colour])))
        elif what == "shape":
            new = replace(thing, shape=str(rng.choice([s for s in SHAPES if s != thing.shape])))
        else:
            pool = POSITIONS if len(things) == 1 else _PAIR_POSITIONS
            used = {t.position for j, t in enumerate(things) if j != i}
            new = replace(thing, position=str(rng.choice([p for p in pool if p != thing.position and p not in used])))
        if (new.shape, new.colour) not in taken:
            things[i] = new
            break
    return SceneSpec(tuple(things), _random_background(rng), _random_noise(rng), int(rng.integers(2**31 - 1)))


def _polygon(cx: float, cy: float, radii: Sequence[float], angle: float) -> list[tuple[float, float]]:
    # Vertices evenly spaced around (cx, cy), starting straight up, turned by ``angle``.
    n = len(radii)
    return [
        (cx + r * math.sin(angle + 2 * math.pi * k / n), cy - r * math.cos(angle + 2 * math.pi * k / n))
        for k, r in enumerate(radii)
    ]


def render_scene(spec: SceneSpec, size: int = 128) -> Image.Image:
    """Draw ``spec`` as a ``size`` x ``size`` RGB picture.  The same spec gives the same picture."""
    rng = np.random.default_rng(spec.seed)
    pixels = np.empty((size, size, 3), dtype=np.float32)
    pixels[:] = spec.background
    if spec.noise > 0:
        pixels += rng.normal(0.0, spec.noise, size=pixels.shape).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    scale = 0.16 if len(spec.things) == 1 else 0.12
    for thing in spec.things:
        fx, fy = POSITIONS[thing.position or "centre"]
        cx = (fx + rng.uniform(-0.05, 0.05)) * size
        cy = (fy + rng.uniform(-0.05, 0.05)) * size
        r = scale * rng.uniform(0.8, 1.25) * size
        colour = tuple(int(np.clip(c + rng.integers(-18, 19), 0, 255)) for c in COLOURS[thing.colour])
        if thing.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        elif thing.shape == "square":
            angle = math.pi / 4 + rng.uniform(-0.3, 0.3)  # corners at 45 degrees: an upright square
            draw.polygon(_polygon(cx, cy, [r * 1.2] * 4, angle), fill=colour)
        elif thing.shape == "triangle":
            draw.polygon(_polygon(cx, cy + 0.15 * r, [r * 1.25] * 3, rng.uniform(-0.25, 0.25)), fill=colour)
        elif thing.shape == "star":
            draw.polygon(_polygon(cx, cy, [r * 1.25, r * 0.5] * 5, rng.uniform(-0.3, 0.3)), fill=colour)
        else:
            raise ValueError(f"unknown shape {thing.shape!r}")
    return image


# ---------------------------------------------------------------------------- captions


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def phrase(thing: Thing, rng: np.random.Generator | None = None) -> str:
    """``"a red circle"``, plus ``"on the left"`` etc. when ``thing.position`` is set."""
    text = f"{_article(thing.colour)} {thing.colour} {thing.shape}"
    if rng is not None and rng.random() < 0.15:
        text = f"{thing.colour} {thing.shape}"
    if thing.position is not None:
        options = POSITION_PHRASES[thing.position]
        text += " " + (options[int(rng.integers(len(options)))] if rng is not None else options[0])
    return text


def describe(mentions: Sequence[Thing], prefix: str = "") -> str:
    """The canonical caption of ``mentions``: ``"a red circle and a blue square on the left"``."""
    return prefix + " and ".join(phrase(m) for m in mentions)


def random_caption(spec: SceneSpec, rng: np.random.Generator) -> tuple[str, tuple[Thing, ...]]:
    """A caption of ``spec`` from one of the templates, and the shapes it mentions.

    A mention's ``position`` is None when the caption does not say where the shape is.
    A two-shape scene is sometimes described by one of its shapes only, as a search for
    "a red circle" should find a picture that also holds something else.
    """
    things = list(spec.things)
    if len(things) == 2:
        if rng.random() < 0.25:
            things = [things[int(rng.integers(2))]]
        elif rng.random() < 0.5:
            things.reverse()
    with_position = rng.random() < 0.4
    mentions = tuple(t if with_position else replace(t, position=None) for t in things)
    prefix = _PREFIXES[int(rng.integers(len(_PREFIXES)))]
    return prefix + " and ".join(phrase(m, rng) for m in mentions), mentions


def satisfies(mentions: Sequence[Thing], spec: SceneSpec) -> bool:
    """Whether every mentioned shape is in ``spec``, each matched by a different shape."""
    if len(mentions) > len(spec.things):
        return False
    for chosen in itertools.permutations(spec.things, len(mentions)):
        if all(
            m.shape == t.shape and m.colour == t.colour and (m.position is None or m.position == t.position)
            for m, t in zip(mentions, chosen, strict=True)
        ):
            return True
    return False


# ---------------------------------------------------------------------------- model helpers


def _settings(home: Path, weights: Path | str = ""):
    from engine.settings import load_settings

    # env={}: the person's own SHOEBOX_* variables must not change what is trained or measured.
    return load_settings(home=home, env={}, clip_model=SHAPES_CLIP, clip_weights=str(weights), threads=2, batch_size=64)


def _new_model(seed: int) -> Any:  # an open_clip CLIP (open_clip has no type information)
    import open_clip
    import torch

    from engine.models.tiny import quiet_random_init_warning, register_tiny_clip_config

    register_tiny_clip_config()
    torch.manual_seed(seed)
    with quiet_random_init_warning():
        return open_clip.create_model(SHAPES_CLIP, pretrained=None, pretrained_image=False, pretrained_text=False)


def _optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    import torch

    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        # open_clip's training rule: no weight decay on gains, biases and the temperature.
        (no_decay if param.ndim < 2 or "ln" in name or "bias" in name or "logit_scale" in name else decay).append(param)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )


def save_checkpoint(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> Path:
    """Write the model's state dict as fp16 safetensors (the loader casts it back to fp32)."""
    import torch
    from safetensors.torch import save_file

    state = {
        k: (v.detach().to(torch.float16) if v.is_floating_point() else v.detach()).contiguous()
        for k, v in model.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".shapes-clip-", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; this is a file to share
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ---------------------------------------------------------------------------- training


_FEATURES = {
    (shape, colour, position): i
    for i, (shape, colour, position) in enumerate(itertools.product(SHAPES, COLOURS, (None, *POSITIONS)))
}


def _feature_ids(things: Sequence[Thing]) -> list[int]:
    return [_FEATURES[(t.shape, t.colour, t.position)] for t in things]


class _Pool:
    """Training pictures, rendered once and put through the app's preprocessing.

    Pictures come in pairs, a scene and its near twin (:func:`mutate_spec`); a batch
    takes whole pairs.  Captions are drawn afresh every time a picture is used.
    """

    def __init__(self, encoder: ClipEncoder, tokenizer, rng: np.random.Generator, pairs: int):
        import torch

        self.tokenizer = tokenizer
        self.rng = rng
        self.specs: list[SceneSpec] = []
        for _ in range(pairs):
            spec = random_spec(rng)
            self.specs += [spec, mutate_spec(spec, rng)]
        # Pictures of several sizes, as people's photos are; the preprocess brings them to 64 px.
        self.images = torch.stack(
            [encoder.preprocess(render_scene(spec, int(rng.integers(64, 161)))) for spec in self.specs]
        )
        # features[j, f]: picture j holds feature f (shape+colour, anywhere or at a position).
        self.features = np.zeros((len(self.specs), len(_FEATURES)), dtype=bool)
        for j, spec in enumerate(self.specs):
            self.features[j, _feature_ids(spec.things)] = True
            self.features[j, _feature_ids([replace(t, position=None) for t in spec.things])] = True
        self._tokens: dict[str, torch.Tensor] = {}

    def _tokenize(self, texts: list[str]) -> torch.Tensor:
        import torch

        missing = sorted({t for t in texts if t not in self._tokens})
        if missing:
            for text, row in zip(missing, self.tokenizer(missing), strict=True):
                self._tokens[text] = row
        return torch.stack([self._tokens[t] for t in texts])

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pictures, caption tokens, match); ``match[i, j]``: caption i describes picture j."""
        import torch

        pairs = self.rng.choice(len(self.specs) // 2, size=size // 2, replace=False)
        index = np.stack([2 * pairs, 2 * pairs + 1], axis=1).reshape(-1)
        captions = [random_caption(self.specs[j], self.rng) for j in index]
        # A caption may fit other pictures of the batch too ("a red circle" and two red
        # circles): every picture a caption describes is a positive for it.  Mentions of
        # one caption are distinct shape+colour pairs, so "all features present" is
        # exactly :func:`satisfies`.
        features = self.features[index]
        match = np.ones((len(index), len(index)), dtype=bool)
        for i, (_, mentions) in enumerate(captions):
            for f in _feature_ids(mentions):
                match[i] &= features[:, f]
        tokens = self._tokenize([c for c, _ in captions])
        return self.images[index], tokens, torch.from_numpy(match.astype(np.float32))


def encode_text_prefix(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens, normalize=True)``, computed on the tokens up to the longest caption.

    The text tower is causal and pools at the end-of-text token, so the padding after it
    cannot change the result; cutting it makes training about a third faster.
    :func:`train` checks the two agree before it starts.
    """
    import torch
    import torch.nn.functional as F

    length = int((tokens != 0).sum(dim=1).max())
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(len(tokens)), tokens.argmax(dim=-1)]  # the end-of-text token has the largest id
    return F.normalize(x @ model.text_projection, dim=-1)


def clip_loss(image_features, text_features, logit_scale, match):
    """Symmetric contrastive loss with several positives per row (``match[i, j]``: caption i fits picture j)."""
    import torch.nn.functional as F

    logits = logit_scale.exp().clamp(max=100) * text_features @ image_features.T
    text_to_image = -(match / match.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    image_to_text = -(match.T / match.T.sum(1, keepdim=True) * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (text_to_image + image_to_text) / 2, logits


def train(
    out: Path,
    *,
    steps: int,
    seed: int,
    batch_size: int = DEFAULT_BATCH,
    lr: float = DEFAULT_LR,
    pool_pairs: int = DEFAULT_POOL_PAIRS,
    log=print,
) -> Path:
    """Train shapes-clip from ``seed`` for ``steps`` steps and write the checkpoint to ``out``."""
    import open_clip
    import torch

    from engine.models.clip import ClipEncoder

    torch.set_num_threads(2)
    started = time.perf_counter()
    model = _new_model(seed)
    model.train()
    optimizer = _optimizer(model, lr)
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

    with tempfile.TemporaryDirectory(prefix="shapes-clip-") as home:
        # The encoder the app would build for this architecture; only its preprocess is used
        # here (no weights are loaded), so training pictures are prepared as at index time.
        encoder = ClipEncoder(_settings(Path(home)))
        pool = _Pool(encoder, open_clip.get_tokenizer(SHAPES_CLIP), np.random.default_rng([seed, 1]), pool_pairs)
    log(f"rendered {len(pool.specs)} training pictures in {time.perf_counter() - started:.1f}s")

    images, tokens, _ = pool.batch(8)
    with torch.no_grad():
        if not torch.allclose(encode_text_prefix(model, tokens), model.encode_text(tokens, normalize=True), atol=1e-5):
            raise RuntimeError("encode_text_prefix no longer matches open_clip's encode_text; fix it first")

    running_loss, running_acc = 0.0, 0.0
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        images, tokens, match = pool.batch(batch_size)
        image_features = model.encode_image(images, normalize=True)
        text_features = encode_text_prefix(model, tokens)
        loss, logits = clip_loss(image_features, text_features, model.logit_scale, match)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
            top = logits.argmax(dim=1)
            running_acc += match[torch.arange(len(top)), top].mean().item()
        running_loss += loss.item()
        if (step + 1) % 50 == 0 or step + 1 == steps:
            n = (step % 50) + 1
            log(
                f"step {step + 1:5d}/{steps}  loss {running_loss / n:.3f}  "
                f"in-batch text->image top-1 {running_acc / n:.3f}  "
                f"lr {lr_at(step):.2e}  {time.perf_counter() - started:6.1f}s"
            )
            running_loss, running_acc = 0.0, 0.0
    # One metadata entry: safetensors writes several in a random order, and the same
    # training should give the same bytes (the file's hash is the library's model identity).
    metadata = {
        "shoebox": f"{SHAPES_CLIP} trained by scripts/shapes_clip.py --seed {seed} --steps {steps} "
        f"--batch-size {batch_size} --lr {lr} --pool-pairs {pool_pairs}"
    }
    save_checkpoint(model.eval(), out, metadata)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) after {time.perf_counter() - started:.1f}s")
    return out


# ---------------------------------------------------------------------------- evaluation


def _top1(
    encoder: ClipEncoder, queries: list[tuple[str, tuple[Thing, ...]]], specs: list[SceneSpec], size: int
) -> float:
    """Fraction of queries whose best picture among ``specs`` is one the query describes."""
    images = encoder.encode_images([render_scene(s, size) for s in specs])
    texts = encoder.encode_texts([q for q, _ in queries])
    best = (texts @ images.T).argmax(axis=1)
    return float(np.mean([satisfies(m, specs[b]) for (_, m), b in zip(queries, best, strict=True)]))


def evaluate(
    encoder: ClipEncoder, seed: int = 12345, candidates: int = 50, rounds: int = 4, size: int = 128
) -> dict[str, float]:
    """Held-out retrieval accuracy of ``encoder`` on freshly generated scenes (never trained on).

    * ``colour_shape``: "a red circle" against ``candidates`` one-shape pictures; right when
      the best picture holds a red circle (several may);
    * ``colour_shape_unique``: the 32 colour/shape pairs, one picture each, "a photo of a
      red circle" must find exactly its picture;
    * ``with_position``: "a red circle on the left" against one-shape pictures where the
      same colour and shape also appear elsewhere;
    * ``two_shapes``: "a red circle and a blue square" against a mix of one- and two-shape
      pictures;
    * ``zero_shot``: picture to caption, classifying one-shape pictures among the 32
      "a photo of a <colour> <shape>" captions.
    """
    rng = np.random.default_rng([seed, 2])
    scores: dict[str, list[float]] = {k: [] for k in ("colour_shape", "with_position", "two_shapes")}
    for _ in range(rounds):
        singles = [random_spec(rng, max_things=1) for _ in range(candidates)]
        queries: list[tuple[str, tuple[Thing, ...]]] = [
            (describe([replace(s.things[0], position=None)]), (replace(s.things[0], position=None),)) for s in singles
        ]
        scores["colour_shape"].append(_top1(encoder, queries, singles, size))

        # Each scene with a twin that differs only in where the shape is.
        base = [random_spec(rng, max_things=1) for _ in range(candidates // 2)]
        twins = []
        for s in base:
            other = str(rng.choice([p for p in POSITIONS if p != s.things[0].position]))
            twins.append(replace(s, things=(replace(s.things[0], position=other),), seed=int(rng.integers(2**31 - 1))))
        placed = base + twins
        queries = [(describe(s.things), s.things) for s in placed]
        scores["with_position"].append(_top1(encoder, queries, placed, size))

        mixed = [random_spec(rng) for _ in range(candidates)]
        pairs = [s for s in mixed if len(s.things) == 2]
        queries = [
            (
                describe([replace(t, position=None) for t in s.things]),
                tuple(replace(t, position=None) for t in s.things),
            )
            for s in pairs
        ]
        scores["two_shapes"].append(_top1(encoder, queries, mixed, size))

    combos = [Thing(shape, colour, None) for colour in COLOURS for shape in SHAPES]
    unique = [random_spec(rng, max_things=1) for _ in combos]
    unique = [
        replace(s, things=(replace(c, position=s.things[0].position),)) for s, c in zip(unique, combos, strict=True)
    ]
    queries = [(describe([c], "a photo of "), (c,)) for c in combos]
    result = {k: float(np.mean(v)) for k, v in scores.items()}
    images = encoder.encode_images([render_scene(s, size) for s in unique])
    texts = encoder.encode_texts([q for q, _ in queries])
    result["colour_shape_unique"] = float(np.mean((texts @ images.T).argmax(axis=1) == np.arange(len(combos))))
    tests = [random_spec(rng, max_things=1) for _ in range(200)]
    images = encoder.encode_images([render_scene(s, size) for s in tests])
    guess = (images @ texts.T).argmax(axis=1)
    result["zero_shot"] = float(
        np.mean([combos[g] == replace(s.things[0], position=None) for g, s in zip(guess, tests, strict=True)])
    )
    return result


def evaluate_file(path: Path, **kwargs) -> dict[str, float]:
    """:func:`evaluate` on the checkpoint at ``path``, loaded as the app loads SHOEBOX_CLIP_WEIGHTS."""
    from engine.models import build_clip

    with tempfile.TemporaryDirectory(prefix="shapes-clip-eval-") as home:
        encoder = build_clip(_settings(Path(home), path))
        encoder.load()
        return evaluate(encoder, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"checkpoint to write (default {DEFAULT_OUT})")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"training steps (default {DEFAULT_STEPS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"default {DEFAULT_BATCH}")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"peak learning rate (default {DEFAULT_LR})")
    parser.add_argument(
        "--pool-pairs",
        type=int,
        default=DEFAULT_POOL_PAIRS,
        help=f"training scenes, each with a near twin (default {DEFAULT_POOL_PAIRS})",
    )
    parser.add_argument("--eval-only", action="store_true", help="only evaluate the checkpoint at --out")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 2 or args.batch_size > 2 * args.pool_pairs:
        parser.error("--steps must be at least 1, --batch-size at least 2 and at most twice --pool-pairs")
    started = time.perf_counter()
    if not args.eval_only:
        train(
            args.out,
            steps=args.steps,
            seed=args.seed,
            batch_size=args.batch_size,
            lr=args.lr,
            pool_pairs=args.pool_pairs,
        )
    elif not args.out.is_file():
        parser.error(f"there is no checkpoint at {args.out}")
    scores = evaluate_file(args.out)
    print("held-out retrieval (top-1):")
    for name, value in scores.items():
        print(f"  {name:20s} {value:.3f}")
    print(f"total {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
