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
from .settings import load_settings
from .store import KINDS

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


def _open_library(args: argparse.Namespace) -> Any:
    from .library import Library

    return Library(load_settings(home=args.home))


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
        stats["vector_index"] = indexes["clip"]  # the photos' index, as before there were two
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
        index = indexes[space]
        if index.get("live") is None or index.get("file_bytes") is None:
            graphs.append(f"{label} no graph file")
        else:
            graphs.append(
                f"{label} {index['live']} live + {index['dead']} dead nodes, {index['file_bytes'] / 1e3:.0f} kB"
            )
    print(f"index     {'; '.join(graphs)}")
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

    settings = load_settings(home=args.home)
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


COMMANDS = {
    "index": cmd_index,
    "search": cmd_search,
    "ask": cmd_ask,
    "autotag": cmd_autotag,
    "status": cmd_status,
    "tag": cmd_tag,
    "models": cmd_models,
    "reembed": cmd_reembed,
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
