"""Library.update_paths: a watcher's batch of changed paths brought up to date (test-tiny models)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from tests.helpers import make_photo, make_text


@pytest.fixture
def folder(tmp_path, library):
    root = tmp_path / "files"
    make_text(root / "notes" / "boiler.txt", "The boiler service is due in October.")
    make_text(root / "notes" / "garden.txt", "The tomatoes in the garden need water every morning.")
    make_photo(root / "photos" / "beach.jpg", 1)
    make_photo(root / "photos" / "trip" / "forest.jpg", 2)
    summary = library.index([root])
    assert summary.added == 4 and summary.failed == []
    return root


def _vectors(library, space):
    out: dict[int, np.ndarray] = {}
    for ids, vectors in library.store.iter_vectors(space=space):
        out.update(zip(ids.tolist(), vectors, strict=True))
    return out


def _paths(library, root):
    return sorted(os.path.relpath(row.path, root) for row in library.store.files_under(str(root)))


def test_a_new_file_is_added_and_found(folder, library):
    new = make_text(folder / "notes" / "dentist.txt", "The dentist appointment is on Tuesday.")
    summary = library.update_paths([new])
    assert (summary.added, summary.updated, summary.removed) == (1, 0, 0)
    assert [r.path for r in library.search("dentist", k=1).results] == [str(new)]


def test_a_changed_file_is_read_again(folder, library):
    path = folder / "notes" / "garden.txt"
    make_text(path, "The roses in the garden need pruning in March.")
    summary = library.update_paths([path])
    assert (summary.added, summary.updated, summary.removed) == (0, 1, 0)
    item = library.store.item_ids_of(str(path))[0]
    assert "roses" in library.store.item_details([item])[item]["text"]


def test_a_moved_file_keeps_its_items_and_vectors(folder, library):
    old, new = folder / "notes" / "boiler.txt", folder / "archive" / "heating.txt"
    photo_old, photo_new = folder / "photos" / "beach.jpg", folder / "photos" / "holiday.jpg"
    ids = library.store.item_ids_of(str(old))
    photo_ids = library.store.item_ids_of(str(photo_old))
    text_vectors, photo_vectors = _vectors(library, "text"), _vectors(library, "clip")
    new.parent.mkdir()
    shutil.move(old, new)
    os.rename(photo_old, photo_new)
    # What a watcher reports for two moves: both ends of each, in any order.
    summary = library.update_paths([new, old, photo_old, photo_new])
    assert (summary.moved, summary.added, summary.removed, summary.updated) == (2, 0, 0, 0)
    assert library.store.item_ids_of(str(new)) == ids
    assert library.store.item_ids_of(str(photo_new)) == photo_ids
    assert library.store.get_file(str(old)) is None
    after_text, after_photo = _vectors(library, "text"), _vectors(library, "clip")
    assert all(np.array_equal(after_text[i], text_vectors[i]) for i in ids)
    assert all(np.array_equal(after_photo[i], photo_vectors[i]) for i in photo_ids)


def test_a_moved_file_reported_in_two_batches_keeps_its_items(folder, library):
    # A watcher may see the new path in one batch and the old one in the next.
    old, new = folder / "notes" / "boiler.txt", folder / "notes" / "heating.txt"
    ids = library.store.item_ids_of(str(old))
    os.rename(old, new)
    assert library.update_paths([new]).moved == 1
    assert library.update_paths([old]).removed == 0
    assert library.store.item_ids_of(str(new)) == ids


def test_a_deleted_file_leaves_the_library(folder, library):
    path = folder / "notes" / "garden.txt"
    path.unlink()
    summary = library.update_paths([path])
    assert summary.removed == 1
    assert library.search("tomatoes", k=3).results == []
    assert _paths(library, folder) == ["notes/boiler.txt", "photos/beach.jpg", "photos/trip/forest.jpg"]


def test_a_deleted_folder_takes_every_file_below_it(folder, library):
    shutil.rmtree(folder / "photos")
    summary = library.update_paths([folder / "photos"])  # only the folder is reported
    assert summary.removed == 2
    assert _paths(library, folder) == ["notes/boiler.txt", "notes/garden.txt"]


def test_a_folder_moved_in_keeps_its_files_vectors(folder, library):
    ids = library.store.item_ids_of(str(folder / "photos" / "trip" / "forest.jpg"))
    shutil.move(folder / "photos" / "trip", folder / "2023 trip")
    summary = library.update_paths([folder / "photos" / "trip", folder / "2023 trip"])
    assert (summary.moved, summary.added, summary.removed) == (1, 0, 0)
    assert library.store.item_ids_of(str(folder / "2023 trip" / "forest.jpg")) == ids


def test_paths_outside_the_library_hidden_or_unsupported_are_left_alone(folder, library, tmp_path):
    outside = make_text(tmp_path / "elsewhere" / "note.txt", "Outside every library folder.")
    hidden = make_text(folder / ".cache" / "note.txt", "A hidden folder's note.")
    dotfile = make_text(folder / "notes" / ".draft.txt", "A hidden note.")
    other = make_text(folder / "notes" / "table.xyz", "Not a kind Shoebox reads.")
    summary = library.update_paths([outside, hidden, dotfile, other])
    assert (summary.added, summary.failed) == (0, [])
    assert library.store.get_file(str(outside)) is None and library.store.get_file(str(dotfile)) is None
    assert library.store.roots() == [str(folder)]  # no folder was added by an update


def test_a_batch_for_a_forgotten_folder_changes_nothing(folder, library):
    library.forget_folder(str(folder))
    make_text(folder / "notes" / "dentist.txt", "The dentist appointment is on Tuesday.")
    summary = library.update_paths([folder / "notes" / "dentist.txt", folder / "notes"])
    assert (summary.added, summary.unchanged) == (0, 0)
    assert library.store.files_under(str(folder)) == []


def test_a_root_that_is_not_there_keeps_its_files(folder, library, tmp_path):
    folder.rename(tmp_path / "unplugged")
    summary = library.update_paths([folder, folder / "notes" / "boiler.txt"])
    assert summary.removed == 0
    assert len(library.store.files_under(str(folder))) == 4


def test_an_empty_mount_point_keeps_its_files(folder, library, tmp_path):
    # An unmounted drive leaves its (empty) mount point: the files are not gone, the drive is.
    folder.rename(tmp_path / "unplugged")
    folder.mkdir()
    summary = library.update_paths([folder])
    assert summary.removed == 0 and len(library.store.files_under(str(folder))) == 4
    rescan = library.rescan()
    assert rescan.removed == 0 and len(library.store.files_under(str(folder))) == 4
    assert any("is empty" in w for w in rescan.warnings)
    # A library folder that was always empty is simply empty.
    empty = tmp_path / "empty"
    empty.mkdir()
    library.index([empty])
    assert not any(str(empty) in w for w in library.rescan().warnings)


def test_a_root_reported_whole_is_rescanned(folder, library):
    (folder / "notes" / "boiler.txt").unlink()
    make_text(folder / "notes" / "dentist.txt", "The dentist appointment is on Tuesday.")
    summary = library.update_paths([folder])
    assert (summary.added, summary.removed, summary.unchanged) == (1, 1, 3)
    assert library.store.roots() == [str(folder)]


def test_a_folder_forgotten_while_a_batch_is_read_does_not_come_back(folder, library, monkeypatch):
    from engine.ingest import Indexer

    new = make_text(folder / "notes" / "dentist.txt", "The dentist appointment is on Tuesday.")
    real_prepare = Indexer._prepare_document

    def forget_meanwhile(self, cand):
        prepared = real_prepare(self, cand)
        library.forget_folder(str(folder))  # the person removes the folder while the batch is read
        return prepared

    monkeypatch.setattr(Indexer, "_prepare_document", forget_meanwhile)
    summary = library.update_paths([new])
    assert summary.added == 0 and summary.failed == []
    assert library.store.files_under(str(folder)) == [] and library.store.roots() == []
