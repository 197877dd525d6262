"""Text in pictures through the library: photos and scanned PDF pages found by a phrase they show."""

from __future__ import annotations

import pytest

from engine.extractors import ocr
from engine.ingest import WAITING
from tests.helpers import enable_heif_writing, make_photo, text_photo, text_picture


@pytest.fixture(autouse=True)
def ocr_on(monkeypatch):
    monkeypatch.delenv(ocr.OCR_ENV, raising=False)
    ocr._status.cache_clear()
    status = ocr.ocr_status()
    if not status.available or status.languages != ("eng", "kor"):
        pytest.fail(f"these tests need Tesseract with English and Korean: {status.describe()}", pytrace=False)
    yield
    ocr._status.cache_clear()


@pytest.fixture
def pictures(tmp_path):
    root = tmp_path / "pictures"
    root.mkdir()
    text_picture(["Invoice from Harbourside Dental Clinic", "Total due: 120 pounds"]).save(root / "scan-001.png")
    text_picture(["서울 치과 영수증", "진료비 합계"]).save(root / "scan-002.png")
    text_photo(["PARKING PERMIT", "ZONE B RESIDENTS"], "page", seed=4).save(root / "IMG_2001.jpg", quality=92)
    make_photo(root / "IMG_2002.jpg", seed=9, size=(640, 480))  # an ordinary photo: no text
    enable_heif_writing()
    text_photo(["MUSEUM OPENING HOURS", "Closed on Mondays"], "screenshot", seed=2).save(root / "IMG_3001.heic")
    pages = [
        text_picture(["Tenancy agreement for the flat"]),
        text_picture(["The deposit is returned in June"]),
        text_picture(["보증금은 유월에 돌려받습니다"]),
    ]
    pages[0].save(root / "lease.pdf", save_all=True, append_images=pages[1:], resolution=150)
    return root


def test_pictures_are_found_by_the_text_they_show(library, pictures):
    summary = library.index([pictures])
    assert summary.failed == [] and summary.added == 6
    store = library.store

    english = library.search("harbourside dental invoice")
    assert english.results[0].path == str(pictures / "scan-001.png")
    assert english.results[0].modality == "ocr" and english.results[0].kind == "image"
    assert "«Dental»" in (english.results[0].snippet or "")

    korean = library.search("치과 영수증")
    assert korean.results[0].path == str(pictures / "scan-002.png")

    permit = library.search("parking permit")
    assert permit.results[0].path == str(pictures / "IMG_2001.jpg")

    heic = library.search("museum opening hours")
    assert heic.results[0].path == str(pictures / "IMG_3001.heic")

    # The photo keeps its picture item first (more like this, thumbnails) and its text after it.
    ids = store.item_ids_of(str(pictures / "scan-001.png"))
    details = store.item_details(ids)
    assert [details[i]["modality"] for i in ids][:2] == ["image", "ocr"]
    assert store.get_file(str(pictures / "scan-001.png")).meta.get("recognised_text") is True
    # The ordinary photo was not read for text.
    plain = store.item_ids_of(str(pictures / "IMG_2002.jpg"))
    assert [store.item_details(plain)[i]["modality"] for i in plain] == ["image"]
    # Recognised text is searched by meaning too: it has vectors in the text space.
    assert store.files_missing_vectors("text") == []


def test_a_scanned_pdf_opens_at_the_page_that_holds_the_phrase(library, pictures):
    library.index([pictures])
    result = library.search("deposit returned in June").results[0]
    assert result.path == str(pictures / "lease.pdf")
    assert result.modality == "ocr" and result.locator["page"] == 2
    korean = library.search("보증금").results[0]
    assert korean.path == str(pictures / "lease.pdf") and korean.locator["page"] == 3


def test_with_ocr_off_pictures_are_indexed_and_scanned_pdfs_say_why(library, pictures, monkeypatch):
    monkeypatch.setenv(ocr.OCR_ENV, "off")
    ocr._status.cache_clear()
    summary = library.index([pictures])
    assert [f["path"] for f in summary.failed] == [str(pictures / "lease.pdf")]
    assert "text recognition is off" in summary.failed[0]["reason"]
    assert summary.added == 5
    assert library.search("harbourside dental invoice").results == []
    assert library.ocr_status()["available"] is False
    # Turned on again, retrying reads the scan.
    monkeypatch.delenv(ocr.OCR_ENV)
    ocr._status.cache_clear()
    again = library.index([pictures], retry_failed=True)
    assert again.failed == [] and again.added == 1


def test_recognised_text_waits_for_the_text_model_like_any_passage(offline_caches, tmp_path, pictures):
    from engine.library import Library
    from engine.settings import load_settings

    home = tmp_path / "bare"
    with Library(load_settings(home=home, env={"SHOEBOX_HOME": str(home)})) as library:
        summary = library.index([pictures])
        assert summary.failed == []
        row = library.store.get_file(str(pictures / "scan-001.png"))
        assert row is not None and sorted(row.meta[WAITING]) == ["clip", "text"]
        # Found by its words before any model is here.
        assert library.search("harbourside invoice").results[0].path == str(pictures / "scan-001.png")
