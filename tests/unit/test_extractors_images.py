"""Image extraction: real camera files from the test corpus (tests/data) and pictures made here."""

from __future__ import annotations

import json
import os
import types
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import ExtractionError, UnsupportedFileError
from engine.extractors import AUDIO_EXTENSIONS, DOCUMENT_EXTENSIONS, IMAGE_EXTENSIONS, images, kind_for_path
from engine.extractors.images import ExtractedImage, extract_image, save_thumbnail
from tests.helpers import enable_heif_writing, make_photo, pillow_heif_missing

from ._data import corpus_dir, flagged_broken, manifest

IMAGE_ROWS = manifest("images")

# Every corpus image that must be refused, and a word the reason must contain.
EXPECTED_FAILURES = {
    "truncated_jpeg.jpg": "truncated",
    "broken.png": "corrupt",
    "truncated_image.png": "truncated",
    "truncated_end_chunk.png": "truncated",
    "broken_data_stream.png": "corrupt",
    "png_decompression_dos.png": "decompression bomb",
    "decompression_bomb.gif": "too large to open safely",
    "decompression_bomb.ico": "too large to open safely",
    "bmp/b/reallybig.bmp": "too large to open safely",
    "bmp/b/shortfile.bmp": "truncated",
    "libtiff_segfault.tif": "corrupt",
    # Not flagged in the manifest, but the file stops 14 bytes after the start
    # of the main image's scan: there are no pixels at all (Pillow's own tests
    # only read its metadata).
    "ultrahdr.jpg": "truncated",
}


def _rgb(extracted: ExtractedImage) -> np.ndarray:
    return np.asarray(extracted.image).astype(np.int16)


def _solid_halves(size=(64, 32)) -> Image.Image:
    """Left half red, right half blue: shows which way a picture was turned."""
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:, : size[0] // 2] = (255, 0, 0)
    pixels[:, size[0] // 2 :] = (0, 0, 255)
    return Image.fromarray(pixels, "RGB")


def _exif(orientation: int | None = None, original: str | None = None, modified: str | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Shoebox"  # Make
    exif[0x0110] = "Test Camera 1"  # Model
    if orientation is not None:
        exif[0x0112] = orientation
    if modified is not None:
        exif[0x0132] = modified  # DateTime
    if original is not None:
        exif.get_ifd(0x8769)[0x9003] = original  # DateTimeOriginal
    return exif


# --------------------------------------------------------------------- file kinds


def test_kind_for_path_by_extension_case_insensitive(tmp_path: Path) -> None:
    assert kind_for_path("holiday/IMG_0001.JPG") == "image"
    assert kind_for_path(tmp_path / "scan.Tiff") == "image"
    assert kind_for_path("notes.MD") == "document"
    assert kind_for_path("paper.pdf") == "document"
    assert kind_for_path("memo.M4A") == "audio"
    assert kind_for_path("한국어 녹음.wav") == "audio"
    assert kind_for_path("archive.zip") is None
    assert kind_for_path("Makefile") is None
    assert kind_for_path(".bashrc") is None
    assert not (IMAGE_EXTENSIONS & DOCUMENT_EXTENSIONS or IMAGE_EXTENSIONS & AUDIO_EXTENSIONS)
    assert {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"} <= IMAGE_EXTENSIONS
    assert kind_for_path("DCIM/IMG_4021.HEIC") == "image"
    assert kind_for_path("export.heif") == "image"


# --------------------------------------------------------------------- corpus


def test_expected_failures_cover_every_flagged_image() -> None:
    flagged = {row["relative_path"] for row in IMAGE_ROWS if flagged_broken(row)}
    assert flagged <= set(EXPECTED_FAILURES), flagged - set(EXPECTED_FAILURES)
    assert set(EXPECTED_FAILURES) <= {row["relative_path"] for row in IMAGE_ROWS}


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_broken_corpus_image_is_refused_with_a_reason(name: str) -> None:
    path = corpus_dir("images") / name
    with pytest.raises(ExtractionError) as info:
        extract_image(path)
    assert EXPECTED_FAILURES[name].lower() in str(info.value).lower()
    # A person reads this message: no exception class names, no tracebacks.
    assert "Error" not in str(info.value) and "Traceback" not in str(info.value)


# Pillow warns (once) about hopper_bad_exif.jpg's damaged EXIF; the picture itself is fine.
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.parametrize(
    "name", [row["relative_path"] for row in IMAGE_ROWS if row["relative_path"] not in EXPECTED_FAILURES]
)
def test_every_other_corpus_image_extracts(name: str) -> None:
    extracted = extract_image(corpus_dir("images") / name)
    assert extracted.image.mode == "RGB"
    assert 1 <= max(extracted.image.size) <= 768
    assert extracted.width >= extracted.image.width and extracted.height >= extracted.image.height
    # The small picture keeps the proportions of the original.
    ratio_full = extracted.width / extracted.height
    ratio_small = extracted.image.width / extracted.image.height
    assert abs(ratio_full - ratio_small) / ratio_full < 0.05 or min(extracted.image.size) <= 2
    json.dumps(extracted.meta)  # stored as JSON by the library


def test_camera_photo_time_camera_and_size() -> None:
    extracted = extract_image(corpus_dir("images") / "flower.jpg")
    assert extracted.media_time == datetime(2003, 12, 14, 12, 1, 44)
    assert (extracted.width, extracted.height) == (480, 360)
    assert extracted.image.size == (480, 360)
    assert extracted.meta["camera_make"] == "Canon"
    assert extracted.meta["camera_model"] == "Canon PowerShot S40"
    assert extracted.meta["format"] == "JPEG"


def test_date_time_original_wins_over_modification_time() -> None:
    # A Nikon photo edited four years later: DateTime is the edit, DateTimeOriginal the shutter.
    path = corpus_dir("images") / "broken_exif_dpi.jpg"
    with Image.open(path) as im:
        assert im.getexif()[0x0132] == "2017:12:06 13:59:33"  # DateTime
    assert extract_image(path).media_time == datetime(2013, 9, 11, 16, 45, 13)


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("iptc.jpg", datetime(2006, 7, 8, 21, 14, 45)),
        ("empty_gps_ifd.jpg", datetime(2020, 7, 27, 14, 46, 48)),
        ("exif_gps.jpg", datetime(2099, 9, 29, 10, 10, 10)),  # as the camera wrote it
        ("broken_exif_dpi.jpg", datetime(2013, 9, 11, 16, 45, 13)),
        # ISO-style DateTime in IFD0, EXIF-style DateTimeOriginal with a NUL at the end.
        ("invalid-exif-without-x-resolution.jpg", datetime(2016, 12, 3, 11, 17, 43)),
        ("frame_size.mpo", datetime(2025, 9, 7, 14, 16, 43)),
        ("pil_sample_cmyk.jpg", datetime(2009, 3, 6, 22, 15, 0)),  # only DateTime is present
        ("flower2.webp", datetime(2013, 7, 4, 17, 24, 41)),
        ("hopper.jpg", None),
    ],
)
def test_capture_time_from_exif(name: str, taken: datetime | None) -> None:
    assert extract_image(corpus_dir("images") / name).media_time == taken


@pytest.mark.parametrize("orientation", range(2, 9))
def test_every_exif_orientation_is_applied(orientation: int) -> None:
    folder = corpus_dir("images")
    upright = _rgb(extract_image(folder / "hopper.jpg"))
    turned = extract_image(folder / f"hopper_orientation_{orientation}.jpg")
    assert turned.meta["orientation"] == orientation
    pixels = _rgb(turned)
    # The stored pixels are hopper turned the other way; once oriented they match
    # hopper up to JPEG noise, and clearly not hopper turned by a quarter.
    assert np.abs(pixels - upright).mean() < 10
    assert np.abs(np.rot90(pixels) - upright).mean() > 40


def test_orientation_swaps_width_and_height() -> None:
    extracted = extract_image(corpus_dir("images") / "orientation_rectangle.jpg")
    assert extracted.meta["orientation"] == 8
    assert extracted.image.size == (1, 2)
    assert (extracted.width, extracted.height) == (1, 2)


def test_xmp_orientation_in_png_is_applied() -> None:
    extracted = extract_image(corpus_dir("images") / "xmp_tags_orientation.png")
    assert extracted.meta["orientation"] == 3


def test_cmyk_jpeg_is_not_inverted() -> None:
    extracted = extract_image(corpus_dir("images") / "pil_sample_cmyk.jpg")
    reference = extract_image(corpus_dir("images") / "pil_sample_cmyk.jpg")
    assert extracted.meta["mode"] == "CMYK" and extracted.image.mode == "RGB"
    assert np.array_equal(_rgb(extracted), _rgb(reference))  # deterministic
    # The sample is red lettering ("RED") on black with a red bar in the top-left
    # corner; a decode that forgot Adobe's inverted CMYK shows cyan on white.
    pixels = _rgb(extracted)
    red, black = pixels[2, 2], pixels[95, 95]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert black.max() < 30


def test_animated_gif_uses_the_first_frame_and_counts_frames() -> None:
    path = corpus_dir("images") / "chi.gif"
    gif = extract_image(path)
    assert gif.meta["frames"] == 31
    with Image.open(path) as im:
        first = np.asarray(im.convert("RGB")).astype(np.int16)
        im.seek(15)
        middle = np.asarray(im.convert("RGB")).astype(np.int16)
    assert not np.array_equal(first, middle)  # the frames differ, so the comparison below means something
    assert np.array_equal(_rgb(gif), first)


def test_big_fax_tiff_is_scaled_down() -> None:
    extracted = extract_image(corpus_dir("images") / "g4-multi.tiff")
    assert (extracted.width, extracted.height) == (3307, 4677)
    assert max(extracted.image.size) == 768
    assert extracted.meta["frames"] == 3


# --------------------------------------------------------------------- made here


def test_generated_jpeg_with_orientation_6_and_exif_time(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    exif = _exif(orientation=6, original="2021:07:04 09:30:15", modified="2022:01:01 00:00:00")
    _solid_halves().save(path, exif=exif)
    extracted = extract_image(path)
    # Stored 64x32; orientation 6 means "turn 90 degrees clockwise to view".
    assert extracted.image.size == (32, 64)
    assert (extracted.width, extracted.height) == (32, 64)
    pixels = _rgb(extracted)
    assert pixels[8, 16].tolist() == pytest.approx([255, 0, 0], abs=40)  # red (left) is now on top
    assert pixels[56, 16].tolist() == pytest.approx([0, 0, 255], abs=40)
    assert extracted.media_time == datetime(2021, 7, 4, 9, 30, 15)
    assert extracted.meta["camera_make"] == "Shoebox"
    assert extracted.meta["camera_model"] == "Test Camera 1"


def test_modification_time_is_the_last_resort(tmp_path: Path) -> None:
    path = tmp_path / "edited.jpg"
    _solid_halves().save(path, exif=_exif(modified="2019:05:06 07:08:09"))
    assert extract_image(path).media_time == datetime(2019, 5, 6, 7, 8, 9)


def test_zeroed_exif_time_means_unknown(tmp_path: Path) -> None:
    path = tmp_path / "unset-clock.jpg"
    _solid_halves().save(path, exif=_exif(original="0000:00:00 00:00:00"))
    assert extract_image(path).media_time is None


def test_large_jpeg_is_drafted_and_downscaled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.jpg"
    _solid_halves((2400, 1600)).save(path, quality=80)
    # Decoding 3.84 MP would break this cap; JPEG's 1/8-scale decode (300x200) does not.
    monkeypatch.setattr(images, "MAX_DECODED_PIXELS", 100_000)
    extracted = extract_image(path, max_side=256)
    assert extracted.image.size == (256, 171)
    assert (extracted.width, extracted.height) == (2400, 1600)


def test_pixel_cap_refuses_images_that_cannot_be_drafted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    _solid_halves((2400, 1600)).save(path)
    monkeypatch.setattr(images, "MAX_DECODED_PIXELS", 100_000)
    with pytest.raises(ExtractionError, match=r"too large to open safely \(3\.8 megapixels\)"):
        extract_image(path)


def test_png_alpha_is_composited_on_white(tmp_path: Path) -> None:
    pixels = np.zeros((10, 20, 4), np.uint8)
    pixels[:, :10] = (255, 0, 0, 0)  # fully transparent red
    pixels[:, 10:] = (255, 0, 0, 128)  # half transparent red
    path = tmp_path / "alpha.png"
    Image.fromarray(pixels, "RGBA").save(path)
    extracted = _rgb(extract_image(path))
    assert extracted[5, 2].tolist() == [255, 255, 255]
    assert extracted[5, 15].tolist() == pytest.approx([255, 127, 127], abs=2)


def test_grey_with_alpha_and_palette_transparency(tmp_path: Path) -> None:
    la = Image.new("LA", (8, 8), (0, 0))  # black, fully transparent
    la.save(tmp_path / "la.png")
    assert _rgb(extract_image(tmp_path / "la.png")).min() == 255

    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.paste(0, (0, 0, 4, 8))
    palette.save(tmp_path / "transparent.gif", transparency=0)
    extracted = _rgb(extract_image(tmp_path / "transparent.gif"))
    assert extracted[4, 1].tolist() == [255, 255, 255]  # the transparent index
    assert extracted[4, 6].tolist() == [0, 255, 0]


def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)  # uint16 -> mode I;16
    extracted = extract_image(path)
    assert extracted.meta["mode"].startswith("I")
    row = _rgb(extracted)[1, :, 0]
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0) and 100 < row[128] < 155  # a ramp, not a wall of white


def test_16_bit_grey_with_trns_transparency() -> None:
    extracted = extract_image(corpus_dir("images") / "i_trns.png")
    with Image.open(corpus_dir("images") / "i_trns.png") as im:
        transparent = np.asarray(im) == im.info["transparency"]
    pixels = _rgb(extracted)
    assert transparent.any()
    assert (pixels[transparent] == 255).all()


def test_cmyk_made_here_stays_white(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 0, 0, 0)).save(path)  # no ink = white paper
    assert _rgb(extract_image(path)).min() > 245


@pytest.mark.parametrize(
    ("suffix", "save_kwargs"),
    [(".webp", {"quality": 90}), (".bmp", {}), (".tif", {"compression": "tiff_lzw"}), (".png", {})],
)
def test_other_formats_made_here(tmp_path: Path, suffix: str, save_kwargs: dict) -> None:
    path = tmp_path / f"halves{suffix}"
    _solid_halves().save(path, **save_kwargs)
    extracted = extract_image(path)
    assert extracted.image.size == (64, 32)
    pixels = _rgb(extracted)
    assert pixels[16, 8].tolist() == pytest.approx([255, 0, 0], abs=12)
    assert pixels[16, 56].tolist() == pytest.approx([0, 0, 255], abs=12)


def test_animated_gif_webp_and_multipage_tiff_made_here(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 10), color) for color in ("red", "lime", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    frames[0].save(tmp_path / "pages.tiff", save_all=True, append_images=frames[1:])
    for name in ("anim.gif", "anim.webp", "pages.tiff"):
        extracted = extract_image(tmp_path / name)
        assert extracted.meta["frames"] == 3
        assert _rgb(extracted)[5, 10].tolist() == [255, 0, 0]


def test_korean_file_name(tmp_path: Path) -> None:
    path = tmp_path / "가족 여행 사진.jpg"
    _solid_halves().save(path, exif=_exif(original="2023:08:15 18:00:00"))
    assert extract_image(path).media_time == datetime(2023, 8, 15, 18, 0, 0)


# --------------------------------------------------------------------- bad files


def test_text_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_text("this is a shopping list, not a photo\n")
    with pytest.raises(ExtractionError, match=r"^file ends with \.jpg but is not an image$"):
        extract_image(path)


def test_empty_missing_and_folder(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ExtractionError, match=r"^file is empty \(0 bytes\)$"):
        extract_image(tmp_path / "empty.png")
    with pytest.raises(ExtractionError, match="file not found"):
        extract_image(tmp_path / "gone.jpg")
    (tmp_path / "album.jpg").mkdir()
    with pytest.raises(ExtractionError, match="folder"):
        extract_image(tmp_path / "album.jpg")


def test_truncated_jpeg_made_here(tmp_path: Path) -> None:
    full = tmp_path / "full.jpg"
    _solid_halves((400, 300)).save(full, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ExtractionError, match="truncated"):
        extract_image(cut)


def test_unreadable_file_says_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "private.jpg"
    _solid_halves().save(path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(images.Image, "open", refuse)  # tests run as root, where chmod 000 does not stop reads
    with pytest.raises(ExtractionError, match=r"^permission denied"):
        extract_image(path)


# --------------------------------------------------------------------- HEIC/HEIF


def test_corpus_heif_is_decoded_through_pillow_heif() -> None:
    heif = extract_image(corpus_dir("images") / "avif" / "hopper.heif")
    assert heif.meta["format"] == "HEIF"
    assert (heif.width, heif.height) == heif.image.size == (128, 128)
    # The same picture as hopper.jpg, up to the two codecs' losses.
    assert np.abs(_rgb(heif) - _rgb(extract_image(corpus_dir("images") / "hopper.jpg"))).mean() < 10


def test_heic_photo_time_camera_and_orientation(tmp_path: Path) -> None:
    path = tmp_path / "IMG_4021.HEIC"
    enable_heif_writing()
    # Stored 64 x 32, left red and right blue; orientation 6 shows it turned a quarter clockwise.
    # EXIF as bytes: only then does pillow-heif also write the container's rotation, as an iPhone does.
    exif = _exif(orientation=6, original="2023:08:19 18:42:07").tobytes()
    _solid_halves((64, 32)).save(path, format="HEIF", quality=90, exif=exif)
    extracted = extract_image(path)
    assert extracted.meta["format"] == "HEIF"
    assert extracted.media_time == datetime(2023, 8, 19, 18, 42, 7)
    assert extracted.meta["camera_make"] == "Shoebox" and extracted.meta["camera_model"] == "Test Camera 1"
    assert extracted.meta["orientation"] == 6
    # Turned exactly once (libheif turns it; turning it again would lay it on its side).
    assert (extracted.width, extracted.height) == extracted.image.size == (32, 64)
    top, bottom = _rgb(extracted)[2, 16], _rgb(extracted)[61, 16]
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_heic_without_pillow_heif_says_how_to_enable_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_photo(tmp_path / "IMG_4022.heic", 5)
    with pillow_heif_missing(monkeypatch), pytest.raises(UnsupportedFileError) as info:
        extract_image(path)
    reason = str(info.value)
    assert reason.startswith("HEIC/HEIF photos need the pillow-heif package, which is not installed")
    assert "`pip install pillow-heif`" in reason and "retry" in reason
    assert "Error" not in reason and "Traceback" not in reason
    assert extract_image(path).meta["format"] == "HEIF"  # and it is read once the package is back


def test_heic_with_a_broken_pillow_heif_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_photo(tmp_path / "IMG_4023.heic", 6)
    # A module that imports but lacks what Shoebox uses: a damaged or foreign install.
    broken = types.ModuleType("pillow_heif")
    reason = r"cannot be loaded .*`pip install --force-reinstall pillow-heif`"
    with pillow_heif_missing(monkeypatch, instead=broken), pytest.raises(UnsupportedFileError, match=reason):
        extract_image(path)


def test_a_damaged_heic_is_refused_with_a_reason(tmp_path: Path) -> None:
    whole = make_photo(tmp_path / "whole.heic", 7, size=(256, 192))
    cut = tmp_path / "cut.heic"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ExtractionError) as info:
        extract_image(cut)
    assert not isinstance(info.value, UnsupportedFileError)
    assert "corrupt" in str(info.value) or "truncated" in str(info.value)


def test_bad_max_side_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_side must be at least 1"):
        extract_image(tmp_path / "whatever.jpg", max_side=0)


# --------------------------------------------------------------------- thumbnails


def test_save_thumbnail_writes_a_small_jpeg_atomically(tmp_path: Path) -> None:
    source = Image.fromarray(np.random.default_rng(1).integers(0, 255, (600, 900, 3), dtype=np.uint8), "RGB")
    dest = tmp_path / "thumbs" / "ab" / "abcdef.jpg"
    save_thumbnail(source, dest)
    with Image.open(dest) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (320, 213)
    assert os.listdir(dest.parent) == ["abcdef.jpg"]  # no temporary file left behind
    assert source.size == (900, 600)  # the caller's picture is not changed

    save_thumbnail(Image.new("RGBA", (50, 40), (0, 0, 0, 0)), dest, size=32)  # replaces the old one
    with Image.open(dest) as thumb:
        assert thumb.size == (32, 26)
        assert np.asarray(thumb).min() > 240  # transparent became white, not black
    assert os.listdir(dest.parent) == ["abcdef.jpg"]


def test_save_thumbnail_leaves_nothing_behind_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "thumb.jpg"
    dest.write_bytes(b"old thumbnail")

    def broken_save(self, fp, format=None, **params):
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        save_thumbnail(Image.new("RGB", (10, 10)), dest)
    assert os.listdir(tmp_path) == ["thumb.jpg"]
    assert dest.read_bytes() == b"old thumbnail"
