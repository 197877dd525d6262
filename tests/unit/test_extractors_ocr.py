"""Text recognition: Tesseract on pictures of English and Korean text drawn here, the cheap detector, and OCR off."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import ExtractionError
from engine.extractors import kind_for_path, ocr
from engine.extractors.images import extract_image
from tests.helpers import font_path, text_photo, text_picture

from ._data import corpus_dir

ENGLISH = [
    "Dental invoice for Mrs. Jones",
    "Total due: 125.40 EUR by 3 March",
    "Thank you for your visit",
    "Please keep this receipt",
]
KOREAN = [
    "치과 예약은 목요일 오전 10시입니다",
    "영수증 합계 금액 12,500원",
    "방문해 주셔서 감사합니다",
    "영업 시간 월요일부터 금요일까지",
]
ENGLISH_WORDS = ["dental", "invoice", "jones", "total", "125.40", "march", "thank", "visit", "receipt"]
# Tesseract may put a space inside a Korean word or leave one out; the words are looked for without spaces.
KOREAN_WORDS = ["치과", "예약", "목요일", "영수증", "합계", "금액", "감사합니다", "영업", "월요일부터"]


def _found(words: list[str], text: str) -> list[str]:
    folded = "".join(text.casefold().split())
    return [w for w in words if "".join(w.casefold().split()) in folded]


@pytest.fixture(autouse=True)
def fresh_status() -> Iterator[None]:
    """Each test sees the environment it sets: the status is worked out again, before and after."""
    ocr._status.cache_clear()
    yield
    ocr._status.cache_clear()


@pytest.fixture(scope="module")
def fonts() -> None:
    for script in ("latin", "hangul"):
        try:
            font_path(script)
        except FileNotFoundError as exc:
            pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def ocr_on(fonts: None, monkeypatch: pytest.MonkeyPatch) -> ocr.OcrStatus:
    monkeypatch.delenv(ocr.OCR_ENV, raising=False)
    status = ocr.ocr_status()
    if not status.available or status.languages != ("eng", "kor"):
        pytest.fail(f"the OCR tests need Tesseract with English and Korean: {status.describe()}", pytrace=False)
    return status


def _preview(path: Path) -> Image.Image:
    return extract_image(path, max_side=448).image


# --------------------------------------------------------------------- status


def test_status_with_english_and_korean_installed(ocr_on: ocr.OcrStatus) -> None:
    assert ocr_on.reason is None and ocr_on.missing == ()
    assert ocr_on.tessdata is not None and (Path(ocr_on.tessdata) / "kor.traineddata").is_file()
    assert ocr_on.describe() == "on (English, Korean)"


@pytest.mark.parametrize("value", ["off", "OFF", "0", "no"])
def test_shoebox_ocr_off_turns_recognition_off_and_says_so(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ocr.OCR_ENV, value)
    status = ocr.ocr_status()
    assert not status.available
    assert status.reason == f"text recognition is off: SHOEBOX_OCR={value} is set (unset it to read text in pictures)"
    assert status.describe() == status.reason
    with pytest.raises(ExtractionError, match="SHOEBOX_OCR"):
        ocr.recognise(Image.new("RGB", (200, 100), "white"))


def test_missing_language_data_is_a_reason_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fonts: None
) -> None:
    monkeypatch.delenv(ocr.OCR_ENV, raising=False)
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path / "empty"))
    monkeypatch.setattr(ocr, "TESSDATA_CANDIDATES", (str(tmp_path / "nowhere"),))
    status = ocr.ocr_status()
    assert not status.available and status.languages == ()
    assert status.reason is not None
    assert status.reason.startswith("text recognition is off: Tesseract's language data was not found")
    assert "sudo apt install tesseract-ocr-eng tesseract-ocr-kor" in status.reason
    # Indexing a photo of text then simply finds no text; recognising says why.
    photo = tmp_path / "page.jpg"
    text_photo(ENGLISH, "page").save(photo, quality=90)
    assert ocr.photo_text(photo, _preview(photo)) == ""
    with pytest.raises(ExtractionError, match="language data was not found"):
        ocr.recognise(Image.open(photo))


def test_one_language_missing_keeps_the_other(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ocr_on: ocr.OcrStatus
) -> None:
    assert ocr_on.tessdata is not None
    only_english = tmp_path / "tessdata"
    only_english.mkdir()
    (only_english / "eng.traineddata").symlink_to(Path(ocr_on.tessdata) / "eng.traineddata")
    ocr._status.cache_clear()
    monkeypatch.setenv("TESSDATA_PREFIX", str(only_english))
    monkeypatch.setattr(ocr, "TESSDATA_CANDIDATES", ())
    status = ocr.ocr_status()
    assert status.available and status.languages == ("eng",) and status.missing == ("kor",)
    assert status.reason is not None and "Korean text is not recognised" in status.reason
    assert "sudo apt install tesseract-ocr-kor" in status.reason
    assert _found(ENGLISH_WORDS, ocr.recognise(text_picture(ENGLISH))) == ENGLISH_WORDS


def test_tesserocr_not_installed_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delenv(ocr.OCR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "tesserocr", None)  # what an absent package looks like to import
    status = ocr.ocr_status()
    assert not status.available
    assert status.reason == (
        "text recognition is off: the tesserocr package is not installed "
        "(run `pip install tesserocr` in Shoebox's environment)"
    )


def test_language_data_tesseract_cannot_load_is_a_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ocr.OCR_ENV, raising=False)
    broken = tmp_path / "tessdata"
    broken.mkdir()
    (broken / "eng.traineddata").write_bytes(b"this is not language data")
    monkeypatch.setenv("TESSDATA_PREFIX", str(broken))
    monkeypatch.setattr(ocr, "TESSDATA_CANDIDATES", ())
    status = ocr.ocr_status()
    assert not status.available
    assert status.reason is not None and status.reason.startswith("text recognition is off: Tesseract cannot load")


# --------------------------------------------------------------------- recognition


def test_recognises_english_text(ocr_on: ocr.OcrStatus) -> None:
    text = ocr.recognise(text_picture(ENGLISH))
    assert _found(ENGLISH_WORDS, text) == ENGLISH_WORDS
    assert [line for line in text.splitlines() if line] == ENGLISH  # one line per line, read exactly


def test_recognises_korean_text(ocr_on: ocr.OcrStatus) -> None:
    text = ocr.recognise(text_picture(KOREAN))
    assert _found(KOREAN_WORDS, text) == KOREAN_WORDS
    assert "치과 예약은" in text or "치과예약은" in text  # syllables of one word are not split apart


def test_a_blank_or_textured_picture_gives_no_text(ocr_on: ocr.OcrStatus) -> None:
    assert ocr.recognise(Image.new("RGB", (800, 600), "white")) == ""
    assert ocr.recognise(extract_image(corpus_dir("images") / "flower.jpg", max_side=1600).image) == ""


def test_threads_each_use_their_own_tesseract(ocr_on: ocr.OcrStatus) -> None:
    pictures = [text_picture(ENGLISH), text_picture(KOREAN)] * 2
    results: list[str] = [""] * len(pictures)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = ocr.recognise(pictures[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pictures))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results[0] == results[2] and results[1] == results[3]
    assert _found(ENGLISH_WORDS, results[0]) == ENGLISH_WORDS
    assert _found(KOREAN_WORDS, results[1]) == KOREAN_WORDS


# --------------------------------------------------------------------- photos


@pytest.mark.parametrize(
    ("style", "lines", "words"),
    [
        ("page", ENGLISH, ENGLISH_WORDS),
        ("receipt", KOREAN, KOREAN_WORDS),
        ("screenshot", ENGLISH, ENGLISH_WORDS),
    ],
)
def test_photo_text_reads_photos_of_text(
    style: str, lines: list[str], words: list[str], tmp_path: Path, ocr_on: ocr.OcrStatus
) -> None:
    photo = tmp_path / f"{style}.jpg"
    text_photo(lines, style, seed=0).save(photo, quality=88)
    text = ocr.photo_text(photo, _preview(photo))
    # A photo is read less well than a scan: most of the words, not all.
    assert len(_found(words, text)) >= len(words) - 2, text


def test_photo_text_respects_exif_orientation(tmp_path: Path, ocr_on: ocr.OcrStatus) -> None:
    # Stored turned a quarter, with the EXIF tag that turns it back, as a phone held upright writes it.
    photo = tmp_path / "upright.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    text_photo(ENGLISH, "screenshot").rotate(90, expand=True).save(photo, quality=90, exif=exif)
    text = ocr.photo_text(photo, _preview(photo))
    assert len(_found(ENGLISH_WORDS, text)) >= len(ENGLISH_WORDS) - 1, text


def test_ordinary_photo_skips_tesseract(tmp_path: Path, ocr_on: ocr.OcrStatus, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> str:
        raise AssertionError("Tesseract ran on an ordinary photo")

    monkeypatch.setattr(ocr, "recognise", never)
    photo = corpus_dir("images") / "flower.jpg"
    assert ocr.photo_text(photo, _preview(photo)) == ""


def test_photo_text_is_empty_when_ocr_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fonts: None) -> None:
    monkeypatch.setenv(ocr.OCR_ENV, "off")
    photo = tmp_path / "page.jpg"
    text_photo(ENGLISH, "page").save(photo, quality=90)
    assert ocr.photo_text(photo, _preview(photo)) == ""


def test_photo_that_cannot_be_decoded_again_raises_extraction_error(tmp_path: Path, ocr_on: ocr.OcrStatus) -> None:
    photo = tmp_path / "page.jpg"
    text_photo(ENGLISH, "page").save(photo, quality=90)
    preview = _preview(photo)
    photo.write_bytes(photo.read_bytes()[:2000])  # cut off after the preview was made
    with pytest.raises(ExtractionError, match="truncated"):
        ocr.photo_text(photo, preview)


# --------------------------------------------------------------------- the detector

# The corpus's ordinary photos of a size text could be read in (most of its files are icons,
# 128-pixel test pictures or broken on purpose); each must be turned away.
ORDINARY_PHOTOS = [
    "flower.jpg",
    "flower2.webp",
    "iptc.jpg",
    "chi.gif",
    "app13-multiple.jpg",
    "exif_typeerror.jpg",
    "junk_jpeg_header.jpg",
    "truncated_exif_dpi.jpg",
    "xmp_tags_orientation.png",
    "itxt_chunks.png",
    "transparent.webp",
    "avif/exif.avif" if kind_for_path("x.avif") else "hopper.jpg",
]


@pytest.mark.parametrize("name", ORDINARY_PHOTOS)
def test_detector_turns_away_ordinary_photos(name: str) -> None:
    assert not ocr.likely_has_text(_preview(corpus_dir("images") / name))


def test_detector_false_positives_on_the_whole_image_corpus() -> None:
    root = corpus_dir("images")
    previews: dict[str, Image.Image] = {}
    for path in sorted(root.rglob("*")):
        if kind_for_path(path) != "image":
            continue
        try:
            previews[path.relative_to(root).as_posix()] = _preview(path)
        except ExtractionError:
            continue  # broken on purpose
    assert len(previews) >= 40
    said_yes = [name for name, image in previews.items() if ocr.likely_has_text(image)]
    # hopper_bad_exif.jpg decodes to the stripes of damaged data.
    assert set(said_yes) <= {"hopper_bad_exif.jpg"}, said_yes


@pytest.mark.parametrize("style", ["page", "receipt", "screenshot", "slide", "sign"])
@pytest.mark.parametrize("language", ["en", "ko"])
def test_detector_accepts_pictures_of_text(style: str, language: str, tmp_path: Path, fonts: None) -> None:
    lines = ENGLISH if language == "en" else KOREAN
    for seed, size in ((0, (2016, 1512)), (1, (1512, 2016))):
        photo = tmp_path / f"{style}-{seed}.jpg"
        text_photo(lines[:2] if style == "sign" else lines, style, seed, size).save(photo, quality=85)
        assert ocr.likely_has_text(_preview(photo)), photo.name


def test_detector_accepts_scans_and_rejects_small_or_plain_pictures(fonts: None) -> None:
    scan = text_picture(ENGLISH + KOREAN)
    scan.thumbnail((448, 448))
    assert ocr.likely_has_text(scan)
    assert not ocr.likely_has_text(Image.new("RGB", (448, 336), "white"))
    small = text_picture(ENGLISH)
    small.thumbnail((150, 150))
    assert not ocr.likely_has_text(small)


def test_detector_is_cheap(fonts: None) -> None:
    pictures = [_preview_of(text_picture(ENGLISH)), extract_image(corpus_dir("images") / "flower.jpg", 448).image]
    ocr.likely_has_text(pictures[0])
    started = time.perf_counter()
    for _ in range(10):
        for picture in pictures:
            ocr.likely_has_text(picture)
    per_picture = (time.perf_counter() - started) / 20
    # A few milliseconds on a laptop; generous for a loaded test machine.
    assert per_picture < 0.05


def _preview_of(image: Image.Image) -> Image.Image:
    image = image.copy()
    image.thumbnail((448, 448))
    return image


# --------------------------------------------------------------------- PDF pages


def test_pdf_pages_render_at_the_asked_resolution(tmp_path: Path, fonts: None) -> None:
    pdf = tmp_path / "scan.pdf"
    first, second = text_picture(ENGLISH), text_picture(KOREAN)
    first.save(pdf, save_all=True, append_images=[second], resolution=100)
    pages = list(ocr.pdf_page_images(pdf, [2, 1, 7], dpi=150))
    assert [number for number, _ in pages] == [2, 1]  # page 7 does not exist
    image = pages[1][1]
    assert image.mode == "RGB"
    assert abs(image.width - first.width * 1.5) <= 2 and abs(image.height - first.height * 1.5) <= 2


def test_pdf_that_pdfium_cannot_open_raises_extraction_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    with pytest.raises(ExtractionError, match="PDF pages cannot be rendered"):
        list(ocr.pdf_page_images(bad, [1]))


def test_compiled_detector_counts_exactly_what_the_array_expressions_count(fonts: None) -> None:
    rng = np.random.default_rng(3)
    greys = [ocr._grey(_preview_of(text_picture(ENGLISH + KOREAN)))]
    root = corpus_dir("images")
    greys += [ocr._grey(_preview(root / name)) for name in [*ORDINARY_PHOTOS[:6], "hopper_bad_exif.jpg"]]
    # Noise and hard two-level patterns of awkward sizes (not multiples of the block; too small).
    for shape in ((336, 448), (101, 333), (47, 200), (31, 47), (16, 48)):
        greys.append(rng.uniform(0, 255, shape).astype(np.float32))
        greys.append((rng.random(shape) < 0.3).astype(np.float32) * 200.0)
    counts = [ocr._text_blocks(g) for g in greys]
    assert counts == [_reference_text_blocks(g) for g in greys]
    assert counts[0] >= 6 and max(counts[1:7]) < 6  # the text picture says yes, the ordinary photos no


def _reference_text_blocks(g: np.ndarray) -> int:
    """The detector's block count written as array expressions: what the compiled loop must equal."""
    _BLOCK, _EDGE = ocr._BLOCK, ocr._EDGE
    h, w = g.shape
    rows, cols = h // _BLOCK, w // _BLOCK
    if rows < 2 or cols < 3:
        return 0
    g = g[: rows * _BLOCK, : cols * _BLOCK]

    # Strokes: a rise and a fall of at least _EDGE within a few pixels, along
    # rows (vertical strokes) and along columns (horizontal strokes).
    def strokes(diff: np.ndarray, axis: int) -> np.ndarray:
        up, down = diff > _EDGE, diff < -_EDGE
        found = np.zeros_like(up)
        for gap in (1, 2, 3):
            if axis == 1:
                found[:, :-gap] |= (up[:, :-gap] & down[:, gap:]) | (down[:, :-gap] & up[:, gap:])
            else:
                found[:-gap] |= (up[:-gap] & down[gap:]) | (down[:-gap] & up[gap:])
        return found

    dx = np.zeros_like(g)
    dx[:, 1:] = g[:, 1:] - g[:, :-1]
    dy = np.zeros_like(g)
    dy[1:] = g[1:] - g[:-1]
    sx = strokes(dx, 1).reshape(rows, _BLOCK, cols, _BLOCK).mean(axis=(1, 3))
    sy = strokes(dy, 0).reshape(rows, _BLOCK, cols, _BLOCK).mean(axis=(1, 3))

    blocks = g.reshape(rows, _BLOCK, cols, _BLOCK)
    low = blocks.min(axis=(1, 3))
    high = blocks.max(axis=(1, 3))
    spread = high - low
    # Two-toned: nearly every pixel close to the block's darkest or lightest value.
    near = np.minimum(blocks - low[:, None, :, None], high[:, None, :, None] - blocks)
    two_toned = (near < 0.25 * spread[:, None, :, None]).mean(axis=(1, 3))

    texty = (spread > 70) & (two_toned > 0.7) & (sx > 0.03) & (sy > 0.01) & (sx < 0.5)
    # Text runs along lines: keep blocks with a text-like neighbour left or right.
    beside = np.zeros_like(texty)
    beside[:, 1:] |= texty[:, :-1]
    beside[:, :-1] |= texty[:, 1:]
    return int((texty & beside).sum())
