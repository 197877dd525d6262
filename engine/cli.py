"""The ``shoebox`` command.

Every engine error becomes one line on stderr and a non-zero exit status; a
traceback is never shown to a person.  ``--json`` output is a public contract
(see README.md): keep its field names stable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn

from . import __version__
from .errors import Cancelled, ShoeboxError, UsageError
from .extractors.documents import page_unit
from .ingest import describe_waiting
from .query import Filters, Query
from .settings import Settings, load_settings, save_settings
from .store import KINDS, SPACES

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own errors: one line, exit 2
        self.print_usage(sys.stderr)
        raise UsageError(message)


def parse_date(text: str) -> datetime:
    """YYYY, YYYY-MM, YYYY-MM-DD or an ISO date-time, as the start of that period (local time)."""
    text = text.strip()
    for fmt in ("%Y", "%Y-%m", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"cannot read the date {text!r}; write it as 2023, 2023-06 or 2023-06-30") from None


def _period_start(text: str) -> float:
    return parse_date(text).timestamp()


def _add_filter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", action="append", choices=KINDS, default=[], help="only this kind (repeatable)")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="T",
        help="only files with this tag, yours or an auto-tag (repeatable: any of them)",
    )
    p.add_argument("--all-tags", action="store_true", help="with several --tag: files must have all of them")
    p.add_argument("--after", metavar="DATE", help="taken or made on or after DATE (2023, 2023-06, 2023-06-30)")
    p.add_argument("--before", metavar="DATE", help="taken or made before DATE")
    p.add_argument("--folder", metavar="DIR", help="only files inside this folder")


def _filters(args: argparse.Namespace) -> Filters:
    if args.folder and not os.path.isdir(args.folder):
        raise UsageError(f"no such folder: {args.folder}")
    return Filters(
        kinds=tuple(dict.fromkeys(args.kind)),
        tags=tuple(args.tag),
        tags_mode="all" if args.all_tags else "any",
        after=_period_start(args.after) if args.after else None,
        before=_period_start(args.before) if args.before else None,
        folder=os.path.abspath(args.folder) if args.folder else None,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="shoebox", description="Find things in your own photos, documents and recordings by meaning.")
    parser.add_argument(
        "--home", metavar="DIR", help="library folder (default: $SHOEBOX_HOME or your user data folder)"
    )
    parser.add_argument(
        "--store",
        metavar="LOCATION",
        help="where the library is kept, for this command: a PostgreSQL address (postgresql://user@host/db, "
        "or host=... dbname=...), or '' for the SQLite file in the library folder (default: $SHOEBOX_STORE)",
    )
    parser.add_argument("--version", action="version", version=f"shoebox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "index", help="add files and folders to the library; without a PATH, bring every folder of it up to date"
    )
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--retry-failed", action="store_true", help="try again the files that failed before")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("search", help="search the library")
    p.add_argument("query", nargs="?", default="", metavar="QUERY")
    p.add_argument("--image", metavar="FILE", help="find photos like this image (any image file)")
    p.add_argument("--like", metavar="FILE", help="more like this: a file in the library (itself left out)")
    _add_filter_arguments(p)
    p.add_argument("-k", type=int, default=10, metavar="N", help="number of results (default 10)")
    p.add_argument(
        "--min-score",
        type=float,
        metavar="S",
        help="leave out results less similar than S (cosine, -1..1; word matches are kept)",
    )
    p.add_argument(
        "--min-relevance",
        type=float,
        metavar="R",
        help="leave out results whose meaning is less relevant than R (0..1, calibrated; default "
        "SHOEBOX_MIN_RELEVANCE, 0.25); results your words or their name support are kept; 0 shows all",
    )
    p.add_argument(
        "--no-dates",
        action="store_true",
        help='search for date words ("2023", "last week") as words instead of as a time filter',
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")

    p = sub.add_parser("ask", help="answer a question from your files, with citations")
    p.add_argument("question", metavar="QUESTION")
    _add_filter_arguments(p)
    p.add_argument(
        "--extractive", action="store_true", help="answer with sentences from the files even if an LLM is set"
    )
    p.add_argument("--json", action="store_true", help="print the answer as JSON")

    p = sub.add_parser("autotag", help="tag photos again from the auto-tag vocabulary")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="what the library holds")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("reembed", help="encode the library again with the configured models")
    p.add_argument("--space", choices=("clip", "text"), help="only photos (clip) or only passages (text); default both")
    p.add_argument("--json", action="store_true")

    tag = sub.add_parser("tag", help="add, remove and list your own tags")
    tag_sub = tag.add_subparsers(dest="tag_command", metavar="ACTION", parser_class=_Parser)
    tag_sub.required = True
    for action in ("add", "remove"):
        t = tag_sub.add_parser(action, help=f"{action} a tag on files (a folder means every file inside it)")
        t.add_argument("tag", metavar="TAG")
        t.add_argument("paths", nargs="+", metavar="PATH")
        t.add_argument("--json", action="store_true")
    t = tag_sub.add_parser("list", help="every tag with its number of files")
    t.add_argument("--json", action="store_true")

    models = sub.add_parser("models", help="list, download or import model weights")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", parser_class=_Parser)
    models_sub.required = True
    m = models_sub.add_parser("list", help="the configured models and whether their weights are here")
    m.add_argument("--json", action="store_true")
    m = models_sub.add_parser("download", help="download weights (needs the network)")
    m.add_argument("kind", nargs="?", choices=("clip", "whisper", "text"), help="which model (default: all three)")
    m.add_argument("name", nargs="?", help="model name (default: the configured one)")
    m = models_sub.add_parser("import", help="copy a weights file or text model folder you have into the model cache")
    m.add_argument(
        "file", metavar="FILE_OR_FOLDER", help="a CLIP or Whisper weights file, or a sentence-transformers model folder"
    )
    m.add_argument("--kind", choices=("clip", "whisper", "text"), help="what it is (guessed when left out)")
    m.add_argument("--name", help="the model name it belongs to (guessed when left out)")

    store = sub.add_parser("store", help="where the library is kept: copy it to PostgreSQL, show or set its index")
    store_sub = store.add_subparsers(dest="store_command", metavar="ACTION", parser_class=_Parser)
    store_sub.required = True
    s = store_sub.add_parser(
        "migrate", help="copy the SQLite library into an empty PostgreSQL database, then check the copy"
    )
    s.add_argument(
        "--to", required=True, metavar="LOCATION", help="the PostgreSQL database: postgresql://user@host/db or host=..."
    )
    s.add_argument(
        "--use", action="store_true", help="once the copy checks out, keep the library there (writes settings.json)"
    )
    s.add_argument(
        "--sample", type=int, default=20, metavar="N", help="items, words and names checked per test (default 20)"
    )
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s = store_sub.add_parser("info", help="where the library is kept, its schema and its vector index")
    s.add_argument("--json", action="store_true")
    s = store_sub.add_parser("index", help="choose a PostgreSQL library's vector index and build it again")
    s.add_argument("--kind", required=True, choices=("hnsw", "ivfflat"), help="HNSW (a graph) or IVFFlat (lists)")
    s.add_argument("--m", type=int, metavar="N", help="HNSW: links per node (default SHOEBOX_PG_M, 16)")
    s.add_argument(
        "--ef-construction",
        type=int,
        metavar="N",
        help="HNSW: candidates while building (default SHOEBOX_PG_EF_CONSTRUCTION, 64)",
    )
    s.add_argument(
        "--lists", type=int, metavar="N", help="IVFFlat: lists; 0 picks rows / 1000 (default SHOEBOX_PG_LISTS, 0)"
    )
    s.add_argument("--json", action="store_true")
    return parser


class TerminalProgress:
    """A one-line progress bar on stderr, drawn only on a terminal, at most ten times a second."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()
        self._drawn = False

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done != total:
            return
        self._last = now
        width = 24
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 100
        if total:
            filled = int(width * done / total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
            elapsed = now - self._started
            if 0 < done < total and elapsed > 2:
                left = elapsed / done * (total - done)
                bar += f" ~{timedelta(seconds=int(left))} left"
        else:
            bar = "..."
        name = os.path.basename(message) if os.sep in message else message
        line = f"{bar} {name}"[: max(10, columns - 1)]
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _settings(args: argparse.Namespace) -> Settings:
    """The settings for this command: ``--home`` and ``--store`` over the environment and settings.json."""
    return load_settings(home=args.home, store=args.store)


def _open_library(args: argparse.Namespace) -> Any:
    from .library import Library

    return Library(_settings(args))


def _interruptible(run: Any) -> Any:
    """Run ``run(should_cancel)``; the first Ctrl+C asks the work to stop cleanly, a second one aborts."""
    flag = {"stop": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True
        sys.stderr.write("\nstopping after the current batch (Ctrl+C again to abort)...\n")

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no signal handling, plain cancellation only
        previous = None
    try:
        return run(lambda: flag["stop"])
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_index_summary(summary: Any, reembedding: bool = False) -> None:
    s = summary
    if reembedding:
        print(
            f"{_count(s.reembedded, 'file')} embedded again, removed {s.removed}, failed {len(s.failed)} ({s.seconds:.1f} s)"
        )
    else:
        print(
            f"added {s.added}, updated {s.updated}, unchanged {s.unchanged}, moved {s.moved}, "
            f"removed {s.removed}, failed {len(s.failed)} ({s.seconds:.1f} s)"
        )
        if s.reembedded:
            print(f"passages of {_count(s.reembedded, 'file')} cut again and embedded for the text model")
    for failure in s.failed:
        print(f"  skipped {failure['path']}: {failure['reason']}")
    for warning in s.warnings:
        print(f"note: {warning}", file=sys.stderr)
    if s.cancelled:
        print("stopped before the end; run the same command again to finish")


def _run_indexing(args: argparse.Namespace, work: Any) -> int:
    """Run ``work(library, progress, cancel)`` with a progress bar and Ctrl+C handling; print the summary."""
    with _open_library(args) as library:
        progress = TerminalProgress()
        try:
            summary = _interruptible(lambda cancel: work(library, progress, cancel))
        finally:
            progress.close()
    if args.json:
        _print_json(summary.to_json())
    else:
        _print_index_summary(summary, reembedding=args.command == "reembed")
    return EXIT_INTERRUPTED if summary.cancelled else 0


def cmd_index(args: argparse.Namespace) -> int:
    return _run_indexing(
        args,
        lambda library, progress, cancel: (
            library.index(args.paths, on_progress=progress, should_cancel=cancel, retry_failed=args.retry_failed)
            if args.paths
            else library.rescan(on_progress=progress, should_cancel=cancel, retry_failed=args.retry_failed)
        ),
    )


def cmd_reembed(args: argparse.Namespace) -> int:
    return _run_indexing(
        args,
        lambda library, progress, cancel: library.reembed(space=args.space, on_progress=progress, should_cancel=cancel),
    )


def _locator_text(locator: dict, path: str) -> str:
    if "page" in locator:
        unit = page_unit(path)
        return f" p.{locator['page']}" if unit == "page" else f" {unit} {locator['page']}"
    if "start" in locator:
        return f" at {timedelta(seconds=int(locator['start']))}"
    return ""


def cmd_search(args: argparse.Namespace) -> int:
    filters = _filters(args)
    if args.like and not os.path.exists(args.like):
        raise UsageError(f"no such file: {args.like}")
    if args.min_relevance is not None and not 0.0 <= args.min_relevance < 1.0:
        raise UsageError("--min-relevance is a relevance from 0 up to (not including) 1")
    with _open_library(args) as library:
        query = Query(
            text=args.query or "",
            image=args.image,
            like=args.like,
            filters=filters,
            k=args.k,
            min_score=args.min_score,
            min_relevance=args.min_relevance,
            understand_dates=not args.no_dates,
        )
        response = library.search(query)
    if args.json:
        _print_json(response.to_json())
        return 0
    for warning in response.warnings:
        print(f"note: {warning}", file=sys.stderr)
    for phrase in response.dates:
        print(
            f"note: understood {phrase['text']!r} as {phrase['label']} (--no-dates to search it as words)",
            file=sys.stderr,
        )
    if not response.results:
        what = f" {args.query.strip()!r}" if args.query and args.query.strip() else ""
        print(f"nothing matched{what}")
        if response.hidden:
            print(
                f"({response.hidden} weaker result{'s' if response.hidden != 1 else ''} left out; "
                f"--min-relevance 0 shows them)",
                file=sys.stderr,
            )
    for n, r in enumerate(response.results, 1):
        where = _locator_text(r.locator, r.path)
        date = f"  {r.media_time[:10]}" if r.media_time else ""
        tags = f"  [{', '.join(r.tags)}]" if r.tags else ""
        print(f"{n:>3}. {r.path}{where}  ({r.kind}){date}{tags}")
        if r.snippet:
            print(f"     {r.snippet}")
        if r.more:
            noun = "passage" if len(r.more) == 1 else "passages"
            places = ", ".join(
                _locator_text(m["locator"], r.path).strip() for m in r.more[:5] if _locator_text(m["locator"], r.path)
            )
            print(f"     + {len(r.more)} more {noun}" + (f" ({places})" if places else ""))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    filters = _filters(args)
    streamed = False

    def show(token: str) -> None:
        nonlocal streamed
        if not args.json:
            streamed = True
            sys.stdout.write(token)
            sys.stdout.flush()

    with _open_library(args) as library:
        answer = _interruptible(
            lambda cancel: library.ask(
                args.question, filters=filters, on_token=show, should_cancel=cancel, use_llm=not args.extractive
            )
        )
    if args.json:
        _print_json(answer.to_json())
        return 0
    if streamed:
        print()
    else:
        print(answer.answer)
    for warning in answer.warnings:
        print(f"note: {warning}", file=sys.stderr)
    if answer.citations:
        print()
    for c in answer.citations:
        print(f"[{c.number}] {c.path}{_locator_text(c.locator, c.path)}")
    if answer.photos:
        print()
        print("photos:")
        for photo in answer.photos:
            date = f"  {photo.media_time[:10]}" if photo.media_time else ""
            print(f"  {photo.path}{date}")
    return 0


def cmd_autotag(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        progress = TerminalProgress() if not args.json else None
        try:
            tagged = _interruptible(lambda cancel: library.autotag(on_progress=progress, should_cancel=cancel))
        finally:
            if progress is not None:
                progress.close()
        tags = [(n, c) for n, s, c in library.store.tags() if s == "auto"]
    if args.json:
        _print_json({"photos": tagged, "tags": [{"name": n, "files": c} for n, c in tags]})
    else:
        print(
            f"tagged {tagged} photo{'s' if tagged != 1 else ''}; "
            f"{len(tags)} auto-tag{'s' if len(tags) != 1 else ''} in use"
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        stats = library.store.stats()
        stats["failed_files"] = [{"path": f.path, "reason": f.error} for f in library.store.failed_files()]
        indexes = library.index_status()
        # The photos' index, as before there were two (a server library without photos yet: its index settings).
        stats["vector_index"] = indexes.get("clip", stats.get("vector_index"))
        stats["vector_indexes"] = indexes
        # Passages cut for an older Shoebox (files that wait for a model are listed under "waiting").
        stats["passages_waiting"] = sum(
            1
            for row in library.store.files_missing_vectors("text")
            if row.kind in ("document", "audio") and not row.meta.get("waiting")
        )
        stats["ocr"] = library.ocr_status()
        stats["model_changes"] = [
            {"space": c.space, "recorded": c.recorded, "configured": c.configured, "staged": c.staged}
            for c in library.model_changes()
        ]
    if args.json:
        _print_json(stats)
        return 0
    files = stats["files"]
    model = stats["model"]
    print(f"library   {stats['library']}")
    if stats["store"] == "postgresql":
        print("store     PostgreSQL server (shared; `shoebox store info` shows its vector index)")
    else:
        print("store     SQLite file (this computer)")
    print(
        f"files     {_count(files['image'], 'photo')}, {_count(files['document'], 'document')}, "
        f"{_count(files['audio'], 'recording')}, {_count(files.get('video', 0), 'video')} "
        f"({stats['items']} searchable items)"
    )
    print(f"failed    {stats['failed']}")
    for n, line in enumerate(describe_waiting(stats["waiting"])):
        print(("waiting   " if n == 0 else "          ") + line + " (`shoebox models`)")
    ocr = stats["ocr"]
    if ocr["available"]:
        names = {"eng": "English", "kor": "Korean"}
        languages = ", ".join(names.get(code, code) for code in ocr["languages"])
        print(f"text      recognised in pictures and scanned pages ({languages})")
        if ocr["reason"]:
            print(f"          {ocr['reason']}")
    else:
        print(f"text      {ocr['reason']}")
    print(
        f"photos    CLIP {model['name']} ({model['weights']}, {model['dim']} dimensions)"
        if model
        else "photos    no CLIP model yet"
    )
    text_model = stats["text_model"]
    print(
        f"passages  {text_model['name']} ({text_model['weights']}, {text_model['dim']} dimensions)"
        if text_model
        else "passages  no text model yet"
    )
    if stats["passages_waiting"]:
        print(
            f"          {stats['passages_waiting']} files' passages are found by words only until "
            f"`shoebox reembed --space text` (or the next `shoebox index`) embeds them"
        )
    for change in stats["model_changes"]:
        what = "photos" if change["space"] == "clip" else "passages"
        doing = "a re-embed is under way or was stopped" if change["staged"] else "searching is refused"
        print(
            f"model     the {what} were embedded with {change['recorded']['name']} ({change['recorded']['weights']}); "
            f"the settings name {change['configured']['name']} ({change['configured']['weights']}): {doing} "
            f"until `shoebox reembed` finishes"
        )
    print(f"size      {stats['database_bytes'] / 1e6:.1f} MB")
    graphs = []
    for space, label in (("clip", "photos"), ("text", "passages")):
        index = indexes.get(space)
        if index is None:
            continue  # a server library without this space yet
        if index.get("state") == "server":
            graphs.append(f"{label} {_server_index_words(index)} on the server")
        elif index.get("live") is None or index.get("file_bytes") is None:
            graphs.append(f"{label} no graph file")
        else:
            graphs.append(
                f"{label} {index['live']} live + {index['dead']} dead nodes, {index['file_bytes'] / 1e3:.0f} kB"
            )
    print(f"index     {'; '.join(graphs) or 'none yet'}")
    for root in stats["roots"]:
        print(f"folder    {root}")
    for failure in stats["failed_files"][:20]:
        print(f"  failed  {failure['path']}: {failure['reason']}")
    if len(stats["failed_files"]) > 20:
        print(f"  ... and {len(stats['failed_files']) - 20} more (see --json)")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    with _open_library(args) as library:
        store = library.store
        if args.tag_command == "list":
            rows = store.tags()
            if args.json:
                _print_json({"tags": [{"name": n, "source": s, "files": c} for n, s, c in rows]})
            else:
                for name, source, count in rows:
                    print(f"{name}  ({count} files{', auto' if source == 'auto' else ''})")
                if not rows:
                    print("no tags yet; add one with `shoebox tag add TAG PATH...`")
            return 0
        file_ids: list[int] = []
        for path in args.paths:
            ids = store.file_ids_under(os.path.abspath(path))
            if not ids:
                raise UsageError(f"{path} is not in the library; index it first with `shoebox index {path}`")
            file_ids.extend(ids)
        if args.tag_command == "add":
            changed = store.add_tag(args.tag, file_ids)
        else:
            changed = store.remove_tag(args.tag, file_ids)
    if args.json:
        _print_json({"tag": args.tag, "action": args.tag_command, "files": changed})
    else:
        verb = "tagged" if args.tag_command == "add" else "untagged"
        print(f"{verb} {changed} file{'s' if changed != 1 else ''} with {args.tag!r}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import models

    settings = _settings(args)
    if args.models_command == "list":
        rows = models.list_models(settings)
        if args.json:
            _print_json({"models": rows})
        else:
            # Text model names are repository ids ("intfloat/multilingual-e5-small"): the column fits the longest.
            width = max([28, *(len(row["name"]) for row in rows)])
            for row in rows:
                state = f"present ({row.get('path')})" if row.get("present") else "missing"
                print(f"{row['kind']:<8} {row['name']:<{width}} {row.get('weights') or '':<24} {state}")
        return 0
    if args.models_command == "download":
        kinds = [args.kind] if args.kind else ["clip", "whisper", "text"]
        for kind in kinds:
            print(f"downloading {kind} weights ...", file=sys.stderr)
            path = models.download_model(settings, kind, args.name if args.kind else None, force_allowed=True)
            print(f"{kind}: {path}")
        return 0
    path = models.import_model(settings, args.file, kind=args.kind, name=args.name)
    print(f"imported {args.file} as {path}")
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    if args.store_command == "migrate":
        return _store_migrate(args)
    if args.store_command == "info":
        return _store_info(args)
    return _store_index(args)


def _store_migrate(args: argparse.Namespace) -> int:
    from .migrate import migrate_library
    from .stores import check_location, is_postgres, open_store, redact

    if not is_postgres(args.to):
        raise UsageError(
            f"--to must be a PostgreSQL address such as postgresql://user@host/shoebox, not {redact(args.to)!r}"
        )
    check_location(args.to)
    if args.sample < 1:
        raise UsageError("--sample must be at least 1")
    settings = _settings(args)
    if not settings.store and not settings.db_path.exists():
        raise UsageError(
            f"there is no library at {settings.db_path}: index some files first (`shoebox index PATH`), "
            "or name the library's folder with --home"
        )
    source = open_store(settings)
    progress = TerminalProgress()
    try:
        summary = _interruptible(
            lambda cancel: migrate_library(
                source, args.to, settings, on_progress=progress, should_cancel=cancel, sample=args.sample
            )
        )
    finally:
        progress.close()
        source.close()
    used = False
    if summary.ok and args.use:
        save_settings(settings, store=args.to)
        used = True
    if args.json:
        _print_json({**summary.to_json(), "used": used})
    else:
        _print_migration(summary, args.to, settings, used)
    if summary.cancelled:
        return EXIT_INTERRUPTED
    return 0 if summary.ok else EXIT_ERROR


def _print_migration(summary: Any, location: str, settings: Settings, used: bool) -> None:
    import shlex

    from .migrate import MIN_OVERLAP

    if summary.cancelled:
        for note in summary.notes:
            print(f"note: {note}", file=sys.stderr)
        return
    print(f"copied {summary.source} into {summary.target} ({summary.seconds:.1f} s)")
    print()
    width = max(len(c.table) for c in summary.counts)
    print(f"  {'':<{width}}  {'SQLite':>10}  {'PostgreSQL':>10}")
    for c in summary.counts:
        print(f"  {c.table:<{width}}  {c.source:>10}  {c.target:>10}  {'ok' if c.ok else 'DIFFERENT'}")
    print()
    for n in summary.neighbours:
        label = "photos" if n.space == "clip" else "passages"
        stored = "" if n.vectors_same else ", stored vectors DIFFERENT"
        print(
            f"  nearest of {label}: {_count(n.samples, 'item')} checked ({n.index} on the server), the first result "
            f"the same for {n.first_same}, top-10 overlap {n.overlap:.2f}{stored}  {'ok' if n.ok else 'DIFFERENT'}"
        )
    for w in summary.lookups:
        what = "items" if w.what == "words" else "files"
        found = "every one finds the same " + what if w.ok else f"DIFFERENT {what} for {', '.join(w.different)}"
        print(f"  {w.what}: {_count(len(w.words), 'word')} looked up, {found}")
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    print()
    rows_match = all(c.ok for c in summary.counts) and all(w.ok for w in summary.lookups)
    vectors_match = all(n.vectors_same and n.first_same == n.samples for n in summary.neighbours)
    if not summary.ok and rows_match and vectors_match:  # only the index's recall fell short
        print(
            "the rows and vectors match, but the server's index finds too few of the exact nearest neighbours "
            f"(a top-10 overlap under {MIN_OVERLAP}): search wider (SHOEBOX_PG_EF_SEARCH=200) or build a denser "
            "index (`shoebox store index --kind hnsw --m 24 --ef-construction 128`)"
        )
        return
    if not summary.ok:
        print(
            "the copy does not match the library (see DIFFERENT above); the SQLite library is unchanged; "
            "empty the database (DROP DATABASE, CREATE DATABASE) before trying again"
        )
        return
    shown = shlex.quote(summary.target)
    password = " (with your password in place of ***)" if summary.target != location else ""
    if used:
        print(f"the copy checks out; Shoebox now keeps this library there ({settings.home / 'settings.json'})")
    else:
        print(f"the copy checks out; to use it{password}:")
        print(f'  SHOEBOX_STORE={shown} shoebox search "…"')
        print(f'  shoebox --store {shown} search "…"')
        print(f'or for good: shoebox store migrate ... --use, or "store" in {settings.home / "settings.json"}')
    print("the SQLite file stays as it was; thumbnails and models stay on each computer")


def _server_index_words(describe: dict[str, Any]) -> str:
    """A PostgreSQL space's index as ``describe_index`` gives it, in a few words."""
    items = _count(describe["items"], "item")
    if describe["index"] == "exact":
        # IVFFlat learns its lists from the rows: it is built once there are enough of them.
        return f"searched exactly, {items} (an IVFFlat index is built once there are enough vectors)"
    parameters = ", ".join(f"{k} {v}" for k, v in describe["parameters"].items() if v is not None)
    return f"{describe['index']} ({parameters}), {items}"


def _store_info(args: argparse.Namespace) -> int:
    from .stores import served

    with _open_library(args) as library:
        store = library.store
        stats = store.stats()
        spaces = library.index_status()
        if store.serves_vectors:
            vector_index = served(store).vector_index_options()
        else:
            vector_index = {"kind": "hnsw", "where": "graph files in the library folder, kept by Shoebox"}
    info = {
        "store": stats["store"],
        "location": stats["library"],
        "schema_version": stats["schema_version"],
        "vector_index": vector_index,
        "spaces": spaces,
    }
    if args.json:
        _print_json(info)
        return 0
    print(f"store     {'PostgreSQL server' if info['store'] == 'postgresql' else 'SQLite file'}")
    print(f"location  {info['location']}")
    print(f"schema    {info['schema_version']}")
    if info["store"] == "postgresql":
        options = ", ".join(f"{k} {v}" for k, v in vector_index.items() if k != "kind")
        print(f"index     {vector_index['kind']}" + (f" ({options})" if options else ""))
    else:
        print("index     Shoebox's own HNSW graphs, in files in the library folder")
    for space, label in (("clip", "photos"), ("text", "passages")):
        if space not in spaces:
            continue
        describe = spaces[space]
        if info["store"] == "postgresql":
            print(f"{label:<9} {_server_index_words(describe)}")
        elif describe.get("live") is None:
            print(f"{label:<9} no graph file yet ({describe.get('file') or 'built when the space is large enough'})")
        else:
            print(f"{label:<9} {describe['live']} live + {describe['dead']} dead nodes in {describe.get('file')}")
    return 0


def _store_index(args: argparse.Namespace) -> int:
    from .stores import open_store

    settings = _settings(args)
    if args.kind == "hnsw":
        if args.lists is not None:
            raise UsageError("--lists is for --kind ivfflat")
        m = settings.pg_m if args.m is None else args.m
        ef = settings.pg_ef_construction if args.ef_construction is None else args.ef_construction
        # pgvector's own limits: a smaller value is refused by the server with a less helpful message.
        if not 2 <= m <= 100:
            raise UsageError(f"--m must be from 2 to 100, not {m}")
        if not 4 <= ef <= 1000 or ef < 2 * m:
            raise UsageError(f"--ef-construction must be from 4 to 1000 and at least twice --m ({2 * m}), not {ef}")
        options: dict[str, Any] = {"kind": "hnsw", "m": m, "ef_construction": ef}
    else:
        if args.m is not None or args.ef_construction is not None:
            raise UsageError("--m and --ef-construction are for --kind hnsw")
        lists = settings.pg_lists if args.lists is None else args.lists
        if not 0 <= lists <= 32768:
            raise UsageError(f"--lists must be from 0 (chosen from the rows) to 32768, not {lists}")
        options = {"kind": "ivfflat", "lists": lists}
    store = open_store(settings)
    try:
        if not store.serves_vectors:
            raise UsageError(
                f"the library is kept in its SQLite file ({store.location()}) and searched with Shoebox's own HNSW "
                "graphs, which need no choosing; `shoebox store index` sets the vector index of a PostgreSQL "
                "library (--store or SHOEBOX_STORE)"
            )
        from .postgres_store import PostgresStore

        assert isinstance(store, PostgresStore)  # the store that serves vectors
        if not args.json:
            print("building the vector index again (minutes for a large library) ...", file=sys.stderr)
        store.set_vector_index(options)
        spaces = {space: store.describe_index(space) for space in SPACES if store.space_dim(space) is not None}
        chosen = store.vector_index_options()
    finally:
        store.close()
    if args.json:
        _print_json({"vector_index": chosen, "spaces": spaces})
        return 0
    words = ", ".join(f"{k} {v}" for k, v in chosen.items() if k != "kind")
    print(f"vector index: {chosen['kind']}" + (f" ({words})" if words else ""))
    for space, label in (("clip", "photos"), ("text", "passages")):
        if space in spaces:
            print(f"  {label}: {_server_index_words(spaces[space])}")
    return 0


COMMANDS = {
    "index": cmd_index,
    "search": cmd_search,
    "ask": cmd_ask,
    "autotag": cmd_autotag,
    "status": cmd_status,
    "tag": cmd_tag,
    "models": cmd_models,
    "reembed": cmd_reembed,
    "store": cmd_store,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shoebox`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _ran.append(args.command)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"shoebox: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Cancelled as exc:
        print(f"shoebox: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ShoeboxError as exc:
        print(f"shoebox: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nshoebox: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `shoebox search ... | head`: the reader went away; not an error.
        sys.stderr.close()
        return 0
    except OSError as exc:  # the library folder cannot be created, a disk is full, ...
        print(f"shoebox: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_ERROR


# Commands that leave nothing behind once they have answered: a process running one of
# them ends right after closing the library, instead of tearing down the model
# sessions and the compiled index kernels one object at a time (a third of a second of
# a search's wall time, for nothing).
_QUICK_EXIT = frozenset({"search"})
_ran: list[str] = []  # the commands main() ran in this process


def run() -> None:
    """The ``shoebox`` console script: :func:`main` on ``sys.argv``, then the process ends."""
    code = main()
    if _ran and _ran[-1] in _QUICK_EXIT:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed by a reader that went away
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
