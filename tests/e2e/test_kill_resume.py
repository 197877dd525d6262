"""Kill a real indexing process at several moments; the next run must finish the job.

After each SIGKILL the database passes integrity_check, what was committed is
still there, and no file is half-indexed (every indexed file has all its items
and every item its vector).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from engine.store import LibraryStore
from tests.conftest import tiny_env
from tests.helpers import make_photo, make_text

N_PHOTOS = 120
N_NOTES = 30


def _consistent(db_path):
    with LibraryStore(db_path) as store:
        assert store.integrity_check() == "ok"
        orphans = missing = 0
        # Photos' vectors are in item_vectors, passages' in text_vectors (once that space has a model).
        for table, modality in (("item_vectors", "= 'image'"), ("text_vectors", "!= 'image'")):
            if not store._query("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)):
                missing += store._query(f"SELECT count(*) FROM items WHERE modality {modality}")[0][0]
                continue
            orphans += store._query(
                f"SELECT count(*) FROM {table} v WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.id = v.item_id)"
            )[0][0]
            missing += store._query(
                f"SELECT count(*) FROM items i WHERE i.modality {modality} "
                f"AND NOT EXISTS (SELECT 1 FROM {table} v WHERE v.item_id = i.id)"
            )[0][0]
        empty = store._query(
            "SELECT count(*) FROM files f WHERE f.status = 'indexed' AND NOT EXISTS (SELECT 1 FROM items i WHERE i.file_id = f.id)"
        )[0][0]
        assert (orphans, missing, empty) == (0, 0, 0)
        return {r.path for folder in store.roots() for r in store.files_under(folder)}


def _count_files(db_path):
    try:
        with LibraryStore(db_path, readonly=True) as store:
            return store._query("SELECT count(*) FROM files")[0][0]
    except Exception:  # the database may not exist yet, or be mid-creation
        return 0


@pytest.mark.slow
def test_sigkill_during_indexing_then_resume(tmp_path):
    root = tmp_path / "files"
    for n in range(N_PHOTOS):
        make_photo(root / "photos" / f"p{n:03}.jpg", 1000 + n, size=(160, 120))
    for n in range(N_NOTES):
        make_text(root / "notes" / f"n{n:02}.txt", f"Note {n}: " + "the quick brown fox jumps over the lazy dog. " * 40)
    home = tmp_path / "home"
    env = tiny_env(home)
    env["SHOEBOX_BATCH_SIZE"] = "4"
    db_path = home / "library.sqlite3"
    cmd = [sys.executable, "-m", "engine", "index", str(root), "--json"]

    committed_before: set[str] = set()
    kills = 0
    for threshold in (8, 40, 100):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if _count_files(db_path) >= threshold:
                break
            time.sleep(0.02)  # polling another process's progress: there is no signal to wait on
        if proc.poll() is not None:
            break  # finished before we could kill it: the machine is fast
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        committed = _consistent(db_path)
        assert committed_before <= committed, "a committed file was lost"
        committed_before = committed

    assert kills >= 1, "indexing finished before it could be killed once"
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["failed"] == []
    assert summary["unchanged"] == len(committed_before)
    assert summary["added"] == N_PHOTOS + N_NOTES - len(committed_before)
    final = _consistent(db_path)
    assert len(final) == N_PHOTOS + N_NOTES
