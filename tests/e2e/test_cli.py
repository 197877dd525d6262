"""The `shoebox` command, run as a person runs it: a real process, test-tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

import pytest

from tests.conftest import tiny_env
from tests.helpers import make_photo, make_text


def shoebox(home, *args, check=True, input=None):
    proc = subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)],
        env=tiny_env(home),
        capture_output=True,
        text=True,
        timeout=300,
        input=input,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"shoebox {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli-home")
    root = tmp_path_factory.mktemp("cli-files")
    make_photo(root / "photos" / "a.jpg", 1, taken=datetime(2020, 5, 1, 9, 0))
    make_photo(root / "photos" / "b.png", 2)
    os.utime(root / "photos" / "b.png", (1_546_300_800, 1_546_300_800))  # no EXIF: the file time (2019) counts
    make_photo(root / "photos" / "c.jpg", 3, taken=datetime(2023, 8, 2, 18, 0))
    make_text(root / "notes" / "boiler.txt", "The boiler service is due in October; call the plumber first.")
    make_text(root / "notes" / "사진 메모.txt", "가족 사진을 정리하고 앨범을 만들기")
    (root / "notes" / "broken.jpg").write_bytes(b"")
    out = shoebox(home, "index", root, "--json")
    return home, root, json.loads(out.stdout)


def test_index_json_contract(indexed):
    _, root, summary = indexed
    assert set(summary) >= {"added", "updated", "unchanged", "moved", "removed", "failed"}
    assert summary["added"] == 5
    assert summary["failed"] == [{"path": str(root / "notes" / "broken.jpg"), "reason": summary["failed"][0]["reason"]}]
    assert "empty" in summary["failed"][0]["reason"]


def test_reindex_reports_unchanged(indexed):
    home, root, _ = indexed
    summary = json.loads(shoebox(home, "index", root, "--json").stdout)
    assert summary["unchanged"] == 6 and summary["added"] == 0


def test_search_json_contract(indexed):
    home, root, _ = indexed
    data = json.loads(shoebox(home, "search", "boiler plumber", "--json", "-k", "3").stdout)
    assert set(data) >= {"results", "took_ms"}
    first = data["results"][0]
    assert set(first) >= {"path", "kind", "score", "locator", "snippet", "media_time", "tags"}
    assert first["path"] == str(root / "notes" / "boiler.txt")
    assert "«boiler»" in first["snippet"]
    # A one-shot process loads the models it needs: counted apart, never as search time.
    assert data["load_ms"] > 0 and data["meaning_pending"] is False
    assert 0 <= data["encode_ms"] <= data["took_ms"]


def test_search_by_image(indexed):
    home, root, _ = indexed
    data = json.loads(shoebox(home, "search", "--image", root / "photos" / "c.jpg", "--json").stdout)
    assert data["results"][0]["path"] == str(root / "photos" / "c.jpg")
    # A picture finds pictures: the notes are not in its answer, though no --kind was given.
    assert {r["kind"] for r in data["results"]} == {"image"} and len(data["results"]) == 3
    # The --json contract: the same fields, by the same names.
    assert set(data) == {
        "results",
        "took_ms",
        "warnings",
        "query",
        "dates",
        "plan",
        "matched",
        "encode_ms",
        "hidden",
        "min_relevance",
        "keywords_only",
        "load_ms",
        "meaning_pending",
    }
    assert set(data["results"][0]) == {
        "path",
        "kind",
        "score",
        "locator",
        "snippet",
        "media_time",
        "tags",
        "item_id",
        "file_id",
        "similarity",
        "auto_tags",
        "relevance",
        "matched",
        "name_match",
        "more",
        "modality",
    }


def test_search_filters(indexed):
    home, root, _ = indexed
    # Filters alone list what passes them; with words, --min-relevance 0 keeps even what nothing supports.
    data = json.loads(shoebox(home, "search", "--kind", "image", "--after", "2021", "--json").stdout)
    assert [r["path"] for r in data["results"]] == [str(root / "photos" / "c.jpg")]
    data = json.loads(
        shoebox(home, "search", "x", "--kind", "image", "--after", "2021", "--min-relevance", "0", "--json").stdout
    )
    assert [r["path"] for r in data["results"]] == [str(root / "photos" / "c.jpg")]
    data = json.loads(shoebox(home, "search", "x", "--folder", root / "notes", "--min-relevance", "0", "--json").stdout)
    assert {r["kind"] for r in data["results"]} == {"document"} and len(data["results"]) == 2


def test_nothing_matched_is_said_plainly(indexed):
    home, _, _ = indexed
    for nonsense in ("xylophonequartzplinth", '"', "((("):
        proc = shoebox(home, "search", nonsense)
        assert proc.stdout.startswith("nothing matched"), (nonsense, proc.stdout)
        data = json.loads(shoebox(home, "search", nonsense, "--json").stdout)
        assert data["results"] == []


def test_tags_from_the_command_line(indexed):
    home, root, _ = indexed
    shoebox(home, "tag", "add", "holiday", root / "photos" / "a.jpg", root / "photos" / "c.jpg")
    listing = json.loads(shoebox(home, "tag", "list", "--json").stdout)
    assert {"name": "holiday", "source": "user", "files": 2} in listing["tags"]
    data = json.loads(shoebox(home, "search", "--tag", "holiday", "--json").stdout)
    assert sorted(r["path"] for r in data["results"]) == [
        str(root / "photos" / "a.jpg"),
        str(root / "photos" / "c.jpg"),
    ]
    assert all([t for t in r["tags"] if t not in r["auto_tags"]] == ["holiday"] for r in data["results"])
    shoebox(home, "tag", "remove", "holiday", root / "photos")
    assert [t for t in json.loads(shoebox(home, "tag", "list", "--json").stdout)["tags"] if t["source"] == "user"] == []


def test_status(indexed):
    home, _root, _ = indexed
    stats = json.loads(shoebox(home, "status", "--json").stdout)
    assert stats["files"] == {"image": 3, "document": 2, "audio": 0, "video": 0}
    assert stats["model"]["name"] == "test-tiny"
    assert stats["failed_files"][0]["path"].endswith("broken.jpg")
    assert stats["model_changes"] == []
    text = shoebox(home, "status").stdout
    assert "3 photos, 2 documents" in text


def test_korean_query_from_the_command_line(indexed):
    home, root, _ = indexed
    data = json.loads(shoebox(home, "search", "앨범", "--kind", "document", "--json").stdout)
    assert data["results"][0]["path"] == str(root / "notes" / "사진 메모.txt")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["index", "/no/such/folder"], "no such file or folder"),
        (["search"], "type something to search for"),
        (["search", "x", "--after", "last tuesday"], "cannot read the date"),
        (["search", "x", "-k", "0"], "at least 1"),
        (["search", "--image", "/no/such.jpg"], "no such image"),
        (["search", "x", "--kind", "movie"], "invalid choice"),
        (["tag", "add", "x", "/not/indexed"], "not in the library"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_clean_errors_without_traceback(indexed, args, words):
    home, _, _ = indexed
    proc = shoebox(home, *args, check=False)
    assert proc.returncode == 2
    assert words in proc.stderr
    assert proc.stderr.count("shoebox: error:") == 1


def test_library_of_another_model_is_refused_with_the_fix(indexed):
    home, root, _ = indexed
    env = tiny_env(home)
    env["SHOEBOX_CLIP_MODEL"] = "ViT-B-32"
    proc = subprocess.run([sys.executable, "-m", "engine", "index", str(root)], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "shoebox reembed" in proc.stderr and "Traceback" not in proc.stderr


def test_offline_without_weights_says_what_to_do(tmp_path):
    env = tiny_env(tmp_path / "home")
    env["SHOEBOX_CLIP_MODEL"] = "ViT-B-32"
    env.pop("SHOEBOX_CLIP_PRETRAINED", None)
    make_photo(tmp_path / "p" / "x.jpg", 5)
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "index", str(tmp_path / "p")], env=env, capture_output=True, text=True
    )
    # The photo is indexed by what needs no model, and the note says what follows and how.
    assert proc.returncode == 0, proc.stderr
    assert "added 1" in proc.stdout
    assert "once the CLIP model is set up" in proc.stderr and "shoebox models" in proc.stderr
    assert "Traceback" not in proc.stderr
    status = json.loads(shoebox(tmp_path / "home", "status", "--json").stdout)
    assert status["waiting"] == {"clip": 1}


def test_installed_console_script_runs():
    exe = os.path.join(os.path.dirname(sys.executable), "shoebox")
    if not os.path.exists(exe):
        pytest.skip("shoebox is not installed as a console script in this environment")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("shoebox ")


def test_index_without_a_path_rescans_every_folder(tmp_path):
    home, root = tmp_path / "rescan-home", tmp_path / "rescan-files"
    make_text(root / "boiler.txt", "The boiler service is due in October.")
    empty = shoebox(home, "index", check=False)
    assert empty.returncode == 2 and "no folders yet" in empty.stderr  # a usage error, said plainly
    shoebox(home, "index", root)
    make_text(root / "dentist.txt", "The dentist appointment is on Tuesday.")
    summary = json.loads(shoebox(home, "index", "--json").stdout)
    assert (summary["added"], summary["unchanged"]) == (1, 1)


def test_index_without_a_path_finds_additions_changes_moves_and_deletions(tmp_path):
    home, root = tmp_path / "rescan-home", tmp_path / "rescan-files"
    make_text(root / "notes" / "boiler.txt", "The boiler service is due in October.")
    make_text(root / "notes" / "garden.txt", "The tomatoes in the garden need water.")
    make_text(root / "notes" / "old.txt", "A note that will be deleted.")
    make_photo(root / "photos" / "beach.jpg", 1)
    make_text(tmp_path / "second" / "recipe.txt", "Bake the bread for forty minutes.")
    shoebox(home, "index", root, tmp_path / "second")
    make_text(root / "notes" / "dentist.txt", "The dentist appointment is on Tuesday.")  # added
    make_text(root / "notes" / "garden.txt", "The roses in the garden need pruning in March.")  # changed
    (root / "archive").mkdir()
    (root / "photos" / "beach.jpg").rename(root / "archive" / "holiday.jpg")  # moved
    (root / "notes" / "old.txt").unlink()  # deleted
    (tmp_path / "second" / "recipe.txt").rename(tmp_path / "second" / "bread.txt")  # moved, in another folder
    summary = json.loads(shoebox(home, "index", "--json").stdout)
    counts = {key: summary[key] for key in ("added", "updated", "moved", "removed", "unchanged")}
    assert counts == {"added": 1, "updated": 1, "moved": 2, "removed": 1, "unchanged": 1}
    assert summary["failed"] == [] and summary["warnings"] == []
    found = json.loads(shoebox(home, "search", "roses", "--json", "-k", "1").stdout)
    assert [r["path"] for r in found["results"]] == [str(root / "notes" / "garden.txt")]


def test_reembed_encodes_the_library_again(indexed):
    # Runs last in this module: it re-encodes the shared library.
    home, root, _ = indexed
    summary = json.loads(shoebox(home, "reembed", "--json").stdout)
    # The models did not change, so every space is encoded again: photos read from their files,
    # passages from the text kept in the library.  No file counts as updated.
    assert summary["reembedded"] == 5 and summary["updated"] == 0 and summary["added"] == 0
    assert summary["failed"] == [] and not summary["cancelled"]
    text = json.loads(shoebox(home, "reembed", "--space", "text", "--json").stdout)
    assert text["reembedded"] == 2 and text["updated"] == 0
    data = json.loads(shoebox(home, "search", "boiler", "--json", "-k", "1").stdout)
    assert data["results"][0]["path"] == str(root / "notes" / "boiler.txt")
    status = json.loads(shoebox(home, "status", "--json").stdout)
    assert set(status["model"]) == set(status["text_model"]) == {"name", "weights", "dim"}  # the contract
    assert "3 files embedded again, removed 0, failed 0" in shoebox(home, "reembed", "--space", "clip").stdout


def test_ask_answers_with_citations_as_json(indexed):
    home, root, _ = indexed
    data = json.loads(shoebox(home, "ask", "When is the boiler service due?", "--json").stdout)
    assert set(data) >= {"answer", "citations", "took_ms"}
    assert "October" in data["answer"] and "[1]" in data["answer"]
    first = data["citations"][0]
    assert set(first) >= {"path", "kind", "locator", "snippet"}
    assert first["path"] == str(root / "notes" / "boiler.txt") and first["kind"] == "document"
    assert "char_start" in first["locator"]


def test_ask_says_so_when_nothing_is_found(indexed):
    home, _, _ = indexed
    data = json.loads(shoebox(home, "ask", "Who won the football world cup final?", "--json").stdout)
    assert data["citations"] == [] and data["found"] is False
    assert "couldn't find" in data["answer"]
    text = shoebox(home, "ask", "Who won the football world cup final?").stdout
    assert "couldn't find" in text


def test_search_understands_dates_and_can_be_told_not_to(indexed):
    home, root, _ = indexed
    data = json.loads(shoebox(home, "search", "photo 2023", "--kind", "image", "--json").stdout)
    assert data["query"] == "photo" and data["dates"][0]["label"] == "2023"
    assert [r["path"] for r in data["results"]] == [str(root / "photos" / "c.jpg")]
    words = json.loads(shoebox(home, "search", "photo 2023", "--kind", "image", "--no-dates", "--json").stdout)
    assert words["dates"] == [] and len(words["results"]) == 3
    proc = shoebox(home, "search", "photo 2023", "--kind", "image")
    assert "understood '2023' as 2023" in proc.stderr


def test_more_like_this_from_the_command_line(indexed):
    home, root, _ = indexed
    target = root / "photos" / "a.jpg"
    data = json.loads(shoebox(home, "search", "--like", target, "--kind", "image", "--json").stdout)
    assert sorted(r["path"] for r in data["results"]) == sorted(
        [str(root / "photos" / "b.png"), str(root / "photos" / "c.jpg")]
    )
    without_kind = json.loads(shoebox(home, "search", "--like", target, "--json").stdout)
    assert sorted(r["path"] for r in without_kind["results"]) == sorted(r["path"] for r in data["results"])
    proc = shoebox(home, "search", "--like", root / "notes" / "missing.jpg", check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_autotag_and_status_report_the_index(indexed):
    home, _, _ = indexed
    data = json.loads(shoebox(home, "autotag", "--json").stdout)
    assert data["photos"] == 0  # indexing already tagged every photo
    status = json.loads(shoebox(home, "status", "--json").stdout)
    assert status["vector_index"]["state"] == "not loaded"


def test_a_search_process_ends_at_once_with_its_whole_answer_and_exit_status(indexed):
    """`shoebox search` ends the process right after answering (no teardown): nothing may be lost."""
    home, root, _ = indexed
    out = shoebox(home, "search", "boiler", "--json", "-k", "50")
    data = json.loads(out.stdout)  # the whole document reached the pipe
    assert data["results"] and data["results"][0]["path"] == str(root / "notes" / "boiler.txt")
    refused = shoebox(home, "search", "boiler", "--min-relevance", "2", check=False)
    assert refused.returncode == 2 and "--min-relevance" in refused.stderr
    plain = shoebox(home, "search", "boiler")
    assert plain.stdout.rstrip().splitlines()[0].lstrip().startswith("1.")
