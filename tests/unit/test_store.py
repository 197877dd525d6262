import json

import apsw
import numpy as np
import pytest

from engine.errors import LibraryError, ModelMismatchError, SchemaTooNewError
from engine.store import SCHEMA_VERSION, Filters, LibraryStore, NewItem
from tests.helpers import make_v2_library
from tests.postgres import STORES, store_of_kind


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    """A store with 4-dimensional spaces: each test runs on the SQLite store and on PostgreSQL."""
    s = store_of_kind(request, request.param, tmp_path)
    s.ensure_model("test-tiny", "seed0", 4)
    s.ensure_model("test-tiny", "seed0", 4, space="text")
    yield s
    s.close()


def _vec(*values):
    v = np.array(values, dtype=np.float32)
    return (v / np.linalg.norm(v))[None, :]


def _add(store, path, text=None, kind="document", media_time=0.0, vec=(1, 0, 0, 0), content_hash=None):
    with store.transaction():
        return store.add_file(
            path,
            size=10,
            mtime=1.0,
            content_hash=content_hash or path,
            kind=kind,
            media_time=media_time,
            items=[NewItem("text" if text else "image", text=text)],
            vectors=_vec(*vec),
        )


def test_new_database_is_wal_and_migrated(tmp_path):
    with LibraryStore(tmp_path / "a.sqlite3") as s:
        assert s._query("PRAGMA journal_mode")[0][0] == "wal"
        assert s._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        assert s.integrity_check() == "ok"


def test_database_from_newer_shoebox_is_refused(tmp_path):
    path = tmp_path / "new.sqlite3"
    conn = apsw.Connection(str(path))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNewError, match="newer Shoebox"):
        LibraryStore(path)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryError, match="cannot open the library"):
        LibraryStore(path)


def test_model_identity_is_recorded_and_a_different_one_refused(store):
    assert store.model_identity() == {"name": "test-tiny", "weights": "seed0", "dim": 4}
    store.ensure_model("test-tiny", "seed0", 4)  # the same model is fine
    with pytest.raises(ModelMismatchError, match="shoebox reembed"):
        store.ensure_model("ViT-B-32", "laion2b_s34b_b79k", 512)


def test_vectors_and_knn_per_space(store):
    _add(store, "/p/a.jpg", kind="image", vec=(1, 0, 0, 0))
    _add(store, "/p/b.jpg", kind="image", vec=(0, 1, 0, 0))
    _add(store, "/p/c.txt", text="hello", vec=(0.9, 0.1, 0, 0))
    _add(store, "/p/d.mp3", text="spoken words", kind="audio", vec=(0, 0, 1, 0))
    hits = store.vector_knn(_vec(1, 0, 0, 0)[0], 3)
    paths = [store.item_details([i])[i]["path"] for i, _ in hits]
    assert paths == ["/p/a.jpg", "/p/b.jpg"]  # photos live in the clip space
    assert hits[0][1] == pytest.approx(0.0, abs=1e-6)
    passages = store.vector_knn(_vec(1, 0, 0, 0)[0], 3, space="text")
    assert [store.item_details([i])[i]["path"] for i, _ in passages] == ["/p/c.txt", "/p/d.mp3"]
    only_audio = store.vector_knn(_vec(1, 0, 0, 0)[0], 3, kinds=["audio"], space="text")
    assert [store.item_details([i])[i]["path"] for i, _ in only_audio] == ["/p/d.mp3"]
    assert store.count_items("clip") == 2 and store.count_items("text") == 2 and store.count_items() == 4


def test_generation_grows_with_changes(store):
    g0 = store.generation
    fid = _add(store, "/p/a.jpg", kind="image")
    assert store.generation > g0
    g1 = store.generation
    store.remove_file(fid)
    assert store.generation > g1
    assert store.count_items() == 0
    assert store._query("SELECT count(*) FROM item_vectors")[0][0] == 0


def test_move_keeps_items_vectors_and_tags(store):
    fid = _add(store, "/old/a.txt", text="passport renewal")
    store.add_tag("documents", [fid])
    with store.transaction():
        store.move_file(fid, "/new/b.txt", size=10, mtime=2.0)
    assert store.get_file("/old/a.txt") is None
    row = store.get_file("/new/b.txt")
    assert row.id == fid
    assert store.tags_of_files([fid]) == {fid: ["documents"]}
    assert store.keyword_search(["passport"], 5)[0][0] == store.first_item_of_file("/new/b.txt")


def test_copy_reuses_vectors(store):
    fid = _add(store, "/a/x.txt", text="the same words", vec=(0, 0, 1, 0))
    with store.transaction():
        copy = store.copy_file(fid, "/b/x.txt", size=10, mtime=3.0)
    item = store.first_item_of_file("/b/x.txt")
    assert copy != fid
    np.testing.assert_allclose(store.vectors([item], space="text")[0], _vec(0, 0, 1, 0)[0])


def test_reindexing_a_file_keeps_its_tags(store):
    fid = _add(store, "/a/x.txt", text="first version")
    store.add_tag("keep", [fid])
    new_id = _add(store, "/a/x.txt", text="second version")
    assert store.tags_of_files([new_id])[new_id] == ["keep"]


def test_failures_are_recorded_with_reason(store):
    with store.transaction():
        store.record_failure("/p/bad.jpg", size=0, mtime=1.0, kind="image", reason="file is empty (0 bytes)")
    [row] = store.failed_files()
    assert row.path == "/p/bad.jpg" and row.error == "file is empty (0 bytes)"
    assert store.stats()["failed"] == 1


def test_tags_add_remove_list(store):
    a = _add(store, "/p/a.jpg", kind="image")
    b = _add(store, "/p/b.jpg", kind="image")
    assert store.add_tag("Beach", [a, b]) == 2
    assert store.add_tag("beach", [a]) == 0  # tags are case-insensitive
    assert store.tags() == [("Beach", "user", 2)]
    assert store.remove_tag("BEACH", [b]) == 1
    assert store.tags() == [("Beach", "user", 1)]
    store.remove_tag("beach", [a])
    assert store.tags() == []


def test_filters_select_items(store):
    a = _add(store, "/photos/2022/a.jpg", kind="image", media_time=1_650_000_000)
    _add(store, "/photos/2023/b.jpg", kind="image", media_time=1_690_000_000)
    c = _add(store, "/docs/c.txt", text="x", media_time=1_690_000_000)
    store.add_tag("beach", [a])
    store.add_tag("sun", [a, c])

    def paths(**kw):
        ids = store.allowed_item_ids(Filters(**kw)).tolist()
        return sorted(d["path"] for d in store.item_details(ids).values())

    assert paths(kinds=("document",)) == ["/docs/c.txt"]
    assert paths(tags=("beach",)) == ["/photos/2022/a.jpg"]
    assert paths(tags=("beach", "sun")) == ["/docs/c.txt", "/photos/2022/a.jpg"]
    assert paths(tags=("beach", "sun"), tags_mode="all") == ["/photos/2022/a.jpg"]
    assert paths(after=1_680_000_000) == ["/docs/c.txt", "/photos/2023/b.jpg"]
    assert paths(before=1_680_000_000) == ["/photos/2022/a.jpg"]
    assert paths(folder="/photos") == ["/photos/2022/a.jpg", "/photos/2023/b.jpg"]
    assert paths(folder="/photos/2022") == ["/photos/2022/a.jpg"]
    assert paths(folder="/pho") == []  # a folder is a whole path component, not a prefix


@pytest.mark.parametrize(
    "typed",
    [
        'passport "renewal',
        "AND OR NOT",
        "*",
        "-passport",
        "(passport",
        "passport)",
        "'; DROP TABLE items; --",
        "NEAR(a b)",
        "col:value",
        "😀 passport",
        "^start",
        "a + b",
        '""',
        "{x}",
    ],
)
def test_keyword_search_never_raises_on_typed_text(store, typed):
    from engine.search import query_terms

    _add(store, "/d/a.txt", text="passport renewal form")
    hits = store.keyword_search(query_terms(typed), 10)
    assert isinstance(hits, list)
    if "passport" in typed:
        assert hits, typed


def test_korean_matches_inside_words(store):
    _add(store, "/d/k.txt", text="여권 갱신 신청서를 제출했습니다. 만료일은 내년입니다.")
    item = store.first_item_of_file("/d/k.txt")
    assert [h[0] for h in store.keyword_search(["신청서"], 5)] == [item]  # trigram inside a word
    assert [h[0] for h in store.keyword_search(["제출했"], 5)] == [item]
    assert [h[0] for h in store.keyword_search(["여권"], 5)] == [item]  # two characters: substring match
    assert store.keyword_search(["비행기"], 5) == []


def test_meta_is_json(store):
    with store.transaction():
        store.add_file(
            "/m.jpg",
            size=1,
            mtime=1.0,
            content_hash="h",
            kind="image",
            media_time=1.0,
            meta={"camera": "캐논"},
            items=[NewItem("image")],
            vectors=_vec(1, 1, 1, 1),
        )
    raw = store._query("SELECT meta FROM files")[0][0]
    assert json.loads(raw) == {"camera": "캐논"}


def test_rolled_back_transaction_leaves_nothing(store):
    def add_then_die():
        with store.transaction():
            store.add_file(
                "/x.jpg",
                size=1,
                mtime=1.0,
                content_hash="h",
                kind="image",
                media_time=1.0,
                items=[NewItem("image")],
                vectors=_vec(1, 0, 0, 0),
            )
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        add_then_die()
    assert store.get_file("/x.jpg") is None
    assert store.count_items() == 0


def test_common_words_give_way_to_rare_ones(store):
    """A word in most items is left out while a rarer one remains, and never makes the search fail."""
    with store.transaction():
        for n in range(600):
            text = "household paperwork " + ("boiler warranty" if n % 200 == 0 else f"note {n}")
            store.add_file(
                f"/d/{n}.txt",
                size=1,
                mtime=1.0,
                content_hash=f"h{n}",
                kind="document",
                media_time=1.0,
                items=[NewItem("text", text=text)],
                vectors=np.ones((1, 4)),
            )
    rare = {r[0] for r in store._query("SELECT id FROM items WHERE text LIKE '%warranty%'")}
    assert len(rare) == 3
    hits = store.keyword_search(["household", "warranty"], limit=10)
    assert {i for i, _ in hits} == rare  # "household" (in every item) did not dilute the ranking
    common = store.keyword_search(["household", "paperwork"], limit=10)
    assert len(common) == 10 and all(score == -2.0 for _, score in common)  # both words matched


def _v2_library(path):
    """A library as Shoebox wrote it before two spaces: passages with CLIP vectors, FTS over raw text."""
    make_v2_library(
        path,
        ["/lib"],
        [
            {"path": "/lib/photos/IMG_4242.jpg", "kind": "image", "items": [("image", None, None, None)]},
            {
                "path": "/lib/notes/misfits.txt",
                "kind": "document",
                "items": [("text", "The misﬁts started a band.", None, None)],
            },
            {
                "path": "/lib/voice/memo.wav",
                "kind": "audio",
                "items": [("speech", "call the plumber", 0.0, 2.5), ("speech", "about the boiler", 2.5, 5.0)],
            },
        ],
    )


def test_a_library_from_before_two_spaces_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite3"
    _v2_library(path)
    with LibraryStore(path) as store:
        assert store._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        assert store.integrity_check() == "ok"
        # Photos keep their CLIP vectors; passages lose theirs (they were CLIP text vectors).
        assert store.count_items("clip") == 1 and store.count_items("text") == 0 and store.count_items() == 4
        # Passages are found by their words at once, in folded form, and names are words.
        assert [store.item_details([i])[i]["path"] for i, _ in store.keyword_search(["misfits"], 5)] == [
            "/lib/notes/misfits.txt"
        ]
        assert store.keyword_search(["star"], 5) == []  # "started" is another word
        assert [f for f, _ in store.name_search(["IMG_4242"], 5)] == [1]
        # Recordings keep what Whisper heard, to be cut into passages for the text model.
        assert [(s.text, s.start_s, s.end_s) for s in store.transcript(3)] == [
            ("call the plumber", 0.0, 2.5),
            ("about the boiler", 2.5, 5.0),
        ]
        assert [f.path for f in store.files_missing_vectors("text")] == [
            "/lib/notes/misfits.txt",
            "/lib/voice/memo.wav",
        ]
        # A saved HNSW graph (which held the passages' CLIP vectors) must be rebuilt.
        assert store.items_log_start() > store.items_version()


def test_the_upgrade_to_videos_and_recognised_text_keeps_every_row_and_its_links(tmp_path):
    path = tmp_path / "old.sqlite3"
    _v2_library(path)
    with LibraryStore(path) as store:
        store.add_tag("plumbing", [3])
        before = store._query("SELECT id, file_id, seq, modality, text FROM items ORDER BY id")
    with LibraryStore(path) as store:
        assert store._query("SELECT id, file_id, seq, modality, text FROM items ORDER BY id") == before
        assert store._query("PRAGMA foreign_key_check") == []
        assert store._query("PRAGMA foreign_keys")[0][0] == 1
        assert store.tags_of_files([3]) == {3: ["plumbing"]}
        # The new kind and modality are accepted, and deleting a file still takes its items and tags along.
        store.ensure_model("test-tiny", "seed0", 4, space="text")
        with store.transaction():
            store.add_file(
                "/lib/clips/beach.mp4",
                size=1,
                mtime=1.0,
                content_hash="v",
                kind="video",
                media_time=1.0,
                items=[NewItem("image", start_s=0.0), NewItem("ocr", text="SURF SCHOOL")],
            )
            store.remove_file(3)
        assert store._query("SELECT count(*) FROM items WHERE file_id = 3")[0][0] == 0
        assert store._query("SELECT count(*) FROM file_tags WHERE file_id = 3")[0][0] == 0
        assert store.stats()["files"]["video"] == 1


def test_a_file_may_hold_items_of_both_spaces(store):
    """A photo with the text recognised in it: its picture in the CLIP space, its text in the text space."""
    with store.transaction():
        fid = store.add_file(
            "/p/receipt.jpg",
            size=1,
            mtime=1.0,
            content_hash="r",
            kind="image",
            media_time=1.0,
            items=[NewItem("image"), NewItem("ocr", text="DENTAL CARE total 120"), NewItem("ocr", text="thank you")],
            vectors={"clip": _vec(1, 0, 0, 0)},
        )
    ids = store.item_ids_of("/p/receipt.jpg")
    assert store.count_items("clip") == 1 and store.count_items("text") == 0
    assert [i for i, _ in store.items_missing_vectors(fid, "text")] == ids[1:]
    with store.transaction():
        assert store.add_vectors("text", ids[1:], np.eye(4, dtype=np.float32)[:2]) == 2
        assert store.add_vectors("text", ids[1:], np.eye(4, dtype=np.float32)[:2]) == 0  # already there
    assert store.count_items("text") == 2 and store.items_missing_vectors(fid, "text") == []
    assert store.first_items([fid]) == {fid: ids[0]}
    with pytest.raises(ValueError, match="per space"), store.transaction():
        store.add_file(
            "/p/bad.jpg",
            size=1,
            mtime=1.0,
            content_hash="b",
            kind="image",
            media_time=1.0,
            items=[NewItem("image"), NewItem("ocr", text="x")],
            vectors=_vec(1, 0, 0, 0),  # one array for items of two spaces
        )
    # A copy takes both spaces' vectors along.
    with store.transaction():
        copy = store.copy_file(fid, "/p/receipt copy.jpg", size=1, mtime=2.0)
    assert store.items_missing_vectors(copy, "text") == [] and store.items_missing_vectors(copy, "clip") == []


def test_replacing_one_modality_keeps_the_others(store):
    with store.transaction():
        fid = store.add_file(
            "/v/clip.mp4",
            size=1,
            mtime=1.0,
            content_hash="c",
            kind="video",
            media_time=1.0,
            items=[NewItem("image", start_s=0.0), NewItem("speech", start_s=0.0)],
            vectors={"clip": _vec(1, 0, 0, 0)},
        )
    frame = store.item_ids_of("/v/clip.mp4")[0]
    with store.transaction():
        store.replace_items(
            fid,
            [NewItem("speech", text="hello there", start_s=0.0, end_s=2.0)],
            _vec(0, 1, 0, 0),
            modalities=["speech"],
        )
    ids = store.item_ids_of("/v/clip.mp4")
    assert ids[0] == frame and len(ids) == 2
    assert store.item_details([ids[1]])[ids[1]]["text"] == "hello there"
    assert store.first_items([fid]) == {fid: frame}


def test_replacing_items_keeps_the_file_and_its_tags(store):
    fid = _add(store, "/d/a.txt", text="old words")
    store.add_tag("keep", [fid])
    with store.transaction():
        store.replace_items(
            fid,
            [NewItem("text", text="new passage one"), NewItem("text", text="new passage two")],
            np.eye(4, dtype=np.float32)[:2],
        )
    assert store.get_file("/d/a.txt").id == fid and store.tags_of_files([fid]) == {fid: ["keep"]}
    assert store.keyword_search(["old"], 5) == []
    assert len(store.keyword_search(["passage"], 5)) == 2
    assert store.files_missing_vectors("text") == []


def test_a_copy_keeps_the_transcript(store):
    with store.transaction():
        fid = store.add_file(
            "/v/a.wav",
            size=1,
            mtime=1.0,
            content_hash="w",
            kind="audio",
            media_time=1.0,
            items=[NewItem("speech", text="hello there", start_s=0.0, end_s=3.0)],
            vectors=_vec(1, 0, 0, 0),
            transcript=[
                NewItem("speech", text="hello", start_s=0.0, end_s=1.0),
                NewItem("speech", text="there", start_s=1.0, end_s=3.0),
            ],
        )
        store.copy_file(fid, "/v/b.wav", size=1, mtime=2.0)
    copy = store.get_file("/v/b.wav").id
    assert [s.text for s in store.transcript(copy)] == ["hello", "there"]
    store.remove_file(fid)
    assert store.transcript(fid) == []


def test_adding_a_folder_makes_its_name_a_word_of_the_files_inside(store):
    _add(store, "/trips/제주도 여행/day1.txt", text="beach")
    assert store.name_search(["trips"], 5) == []  # indexed before its folder was added: its parent only
    store.add_root("/trips")
    assert [f for f, _ in store.name_search(["trips"], 5)] == [store.get_file("/trips/제주도 여행/day1.txt").id]
    assert len(store.name_search(["제주도"], 5)) == 1


def _many_invoices(store, n_big=2600, n_small=3):
    """``n_big`` notes saying "invoice" in /big (named invoice-N), then ``n_small`` in /small."""
    notes = [("big", n, f"invoice number {n}", (1, 0, 0, 0)) for n in range(n_big)]
    notes += [("small", n, f"invoice for the dentist {n}", (0, 1, 0, 0)) for n in range(n_small)]
    with store.transaction():
        for folder, n, text, vec in notes:
            store.add_file(
                f"/{folder}/invoice-{n}.txt",
                size=10,
                mtime=1.0,
                content_hash=f"{folder}{n}",
                kind="document",
                media_time=0.0,
                items=[NewItem("text", text=text)],
                vectors=_vec(*vec),
            )


def test_a_selective_filter_keeps_every_keyword_and_name_match(store):
    # "invoice" is in every item (a common word) and in every name; the few passing the filter
    # come last.  Filtering after a cap (2,000 hits) lost them.
    _many_invoices(store)
    small = Filters(folder="/small")
    hits = store.keyword_search(["invoice"], limit=60, filters=small)
    assert sorted(store.item_details([i for i, _ in hits])[i]["path"] for i, _ in hits) == [
        f"/small/invoice-{n}.txt" for n in range(3)
    ]
    named = store.name_search(["invoice"], limit=60, filters=small)
    assert sorted(store.get_file_by_id(f).path for f, _ in named) == [f"/small/invoice-{n}.txt" for n in range(3)]
    assert len(store.keyword_search(["invoice"], limit=60)) == 60  # unfiltered: the limit holds


def _read_only_twin(store: LibraryStore) -> LibraryStore:
    """The same library opened again for reading only."""
    if store.serves_vectors:
        from engine.postgres_store import PostgresStore

        return PostgresStore(store._location, readonly=True)  # type: ignore[attr-defined]
    return LibraryStore(store.path, readonly=True)


def test_a_read_only_store_refuses_writes(store):
    reader = _read_only_twin(store)
    try:
        with pytest.raises(Exception, match=r"(?i)read.?only"):
            reader.add_root("/somewhere")
    finally:
        reader.close()
    assert store.roots() == []


def test_a_narrow_filter_is_checked_against_its_passing_items(store, tmp_path):
    # The caller's list of passing items stands in for the filter when it is short;
    # the matches are the same, from the list's temporary table.
    _many_invoices(store)
    small = Filters(folder="/small")
    passing = store.allowed_item_ids(small)
    assert store._narrow(len(passing), 60) and not store._narrow(2600, 60)
    by_filter = store.keyword_search(["invoice", "dentist"], limit=60, filters=small)
    by_list = store.keyword_search(["invoice", "dentist"], limit=60, filters=small, passing=[passing[:1], passing[1:]])
    assert sorted(by_list) == sorted(by_filter) and len(by_list) == 3
    # A list holds only those items, even where the filter would pass more.
    assert [i for i, _ in store.keyword_search(["invoice"], limit=60, passing=[passing[:1]])] == [int(passing[0])]
    # The same inside a snapshot (a search's own connection) and on a read-only store.
    with store.snapshot():
        assert sorted(store.keyword_search(["invoice"], limit=60, filters=small, passing=[passing])) == sorted(
            store.keyword_search(["invoice"], limit=60, filters=small)
        )
    reader = _read_only_twin(store)
    try:
        assert len(reader.keyword_search(["dentist"], limit=60, filters=small, passing=[passing])) == 3
    finally:
        reader.close()
    # The table is left empty: the next search without a list is not narrowed by it.
    assert len(store.keyword_search(["invoice"], limit=60)) == 60


def test_items_of_a_space_are_counted_with_a_vector_or_without(store):
    _add(store, "/a.txt", text="hello")
    assert store.count_space_items("text") == 1 and store.count_space_items("clip") == 0


def test_a_filtered_search_finds_keyword_matches_past_any_cap(store):
    from engine.query import Query
    from engine.search import search

    _many_invoices(store)
    response = search(store, Query("invoice", filters=Filters(folder="/small"), k=10, min_relevance=0.0))
    assert sorted(r.path for r in response.results) == [f"/small/invoice-{n}.txt" for n in range(3)]


def test_a_passage_in_context_is_stitched_from_the_chunks_around_it(store):
    page = "First paragraph.\n\nThe found passage is here.\nIt goes on.\n\n\n\nAfter a gap of blank lines."
    spans = [(0, 30), (18, 55), (60, len(page))]  # overlapping, then whitespace left out between chunks
    texts = [page[a:b] for a, b in spans]
    assert texts[1].startswith("The found") and texts[2].startswith("After")
    with store.transaction():
        store.add_file(
            "/n/notes.txt",
            size=1,
            mtime=1.0,
            content_hash="n",
            kind="document",
            media_time=1.0,
            items=[
                *(
                    NewItem("text", text=t, page=1, char_start=a, char_end=b)
                    for t, (a, b) in zip(texts, spans, strict=True)
                ),
                NewItem("text", text="Another page.", page=2, char_start=0, char_end=13),
                NewItem("ocr", text="SIGN", char_start=0, char_end=4),
            ],
            vectors={"text": np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]]},
        )
    _first, found, after, other_page, ocr = store.item_ids_of("/n/notes.txt")
    context = store.passage_context(found)
    assert context["text"] == page[:55] + "\n\n" + page[60:]
    assert context["text"][context["start"] : context["end"]] == texts[1]
    # The item after the gap is placed after it, too.
    later = store.passage_context(after)
    assert later["text"][later["start"] : later["end"]] == texts[2]
    # Only its own page, and only as far as asked.
    assert store.passage_context(other_page) == {"text": "Another page.", "start": 0, "end": 13}
    near = store.passage_context(found, around=5)
    assert near["text"][near["start"] : near["end"]] == texts[1] and "After" not in near["text"]
    # Text read from a picture and unknown items have no context to show.
    assert store.passage_context(ocr) is None and store.passage_context(10_000) is None
