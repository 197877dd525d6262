"""The engine works without a screen: importing all of it must not load Qt."""

import subprocess
import sys

from tests.conftest import ROOT

ENGINE_MODULES = [
    "engine",
    "engine.cli",
    "engine.errors",
    "engine.settings",
    "engine.store",
    "engine.ingest",
    "engine.search",
    "engine.library",
    "engine.models",
    "engine.extractors",
    "engine.extractors.images",
    "engine.extractors.documents",
    "engine.extractors.audio",
    "engine.extractors.video",
    "engine.index",
    "engine.index.live",
    "engine.dates",
    "engine.answer",
    "engine.llm",
    "engine.autotag",
    "engine.watch",
]


def test_engine_never_imports_qt():
    code = (
        "import sys\n"
        f"for name in {ENGINE_MODULES!r}:\n"
        "    __import__(name)\n"
        "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6'))\n"
        "print(','.join(qt))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"engine imported Qt modules: {out.stdout}"


def test_engine_sources_have_no_qt_import():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "engine").rglob("*.py")
        if any(
            line.lstrip().startswith(("import PySide6", "from PySide6"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []


def test_importing_the_cli_does_not_load_torch():
    # `shoebox status` and `shoebox tag list` must start fast: torch loads only when a model is used,
    # numba (the HNSW kernels) only when a graph is.
    code = "import sys, engine.cli, engine.library; print('torch' in sys.modules or 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the app reaches the engine only through its controller ------------------------------------------

# What a desktop_app module other than the controller may import from the engine: value types the
# widgets hand to the controller or read from its signals, the errors it translates, constants, and
# pure helpers that touch neither the store nor a model.  Everything else (the Library, the store,
# the models, ingestion) is the controller's business.  None means every name of that module.
APP_ENGINE_ALLOWED: dict[str, set[str] | None] = {
    "engine.errors": None,  # exception classes, to tell one failure from another
    "engine.query": {"Query", "Filters", "TagsMode"},
    "engine.settings": {"Settings", "save_settings", "default_home"},
    # Where the bundled files (icons, desktop entry) are, and the version: nothing of the library.
    "engine.bundled": {"resource_path", "version"},
    "engine.search": {"SearchResult", "SearchResponse", "mark_terms", "MEANING_PENDING", "MODELS_MISSING_WARNINGS"},
    "engine.calibration": {"DEFAULT_MIN_RELEVANCE"},
    "engine.extractors": {"IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS"},
    "engine.extractors.documents": {"page_unit"},
    # The pure decoder (a file in, pixels out), for pictures Qt cannot read: HEIC in the preview.
    "engine.extractors.images": {"extract_image"},
    # The same for a video without a saved thumbnail: its first picture that is not blank.
    "engine.extractors.video": {"video_poster"},
    "engine.ingest": {"IndexSummary"},
}
# Modules that may use the whole engine: the controller is the app's one connection to it.
APP_ENGINE_GATEWAYS = {"desktop_app/controller.py"}
# Attributes that only the controller may reach: the Library it owns and the store inside it.
CONTROLLER_ONLY_ATTRIBUTES = {"library", "store"}


def _app_modules():
    import ast

    for path in sorted((ROOT / "desktop_app").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative not in APP_ENGINE_GATEWAYS:
            yield relative, ast.parse(path.read_text(encoding="utf-8"), filename=relative)


def _engine_imports(tree):
    """(line, module, name) for each engine import; name is None for ``import engine.x``."""
    import ast

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "engine" or alias.name.startswith("engine."):
                    yield node.lineno, alias.name, None
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and (node.module == "engine" or node.module.startswith("engine."))
        ):
            for alias in node.names:
                yield node.lineno, node.module, alias.name


def test_app_widgets_import_only_allowed_engine_names():
    offenders = []
    for relative, tree in _app_modules():
        for line, module, name in _engine_imports(tree):
            allowed = APP_ENGINE_ALLOWED.get(module, set())
            if name is None or (allowed is not None and name not in allowed):
                offenders.append(f"{relative}:{line}: {module}" + (f".{name}" if name else ""))
    assert offenders == [], "only desktop_app/controller.py may use these parts of the engine:\n" + "\n".join(offenders)


def test_only_the_controller_holds_the_library():
    import ast

    offenders = [
        f"{relative}:{node.lineno}: .{node.attr}"
        for relative, tree in _app_modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in CONTROLLER_ONLY_ATTRIBUTES
    ]
    assert offenders == [], "widgets ask the AppController instead of reaching into the library:\n" + "\n".join(
        offenders
    )


def test_the_import_rule_sees_a_violation(tmp_path):
    # The rule must catch what it is about, or the two tests above pass by finding nothing.
    import ast

    tree = ast.parse(
        "from engine.store import LibraryStore\nimport engine.library\nfrom engine.query import Query\n"
        "def f(controller):\n    return controller.library.store\n"
    )
    assert [(m, n) for _, m, n in _engine_imports(tree)] == [
        ("engine.store", "LibraryStore"),
        ("engine.library", None),
        ("engine.query", "Query"),
    ]
    assert {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} >= {"library", "store"}


def test_warm_up_imports_what_a_first_search_would_stop_for():
    # The app's start-up worker calls Library.warm_up so that a first search during indexing
    # never compiles the date grammar or loads numba while holding the GIL (tests/gui/test_responsiveness.py).
    code = (
        "import sys\n"
        "from engine.library import Library, _LAZY_MODULES\n"
        "before = [m for m in _LAZY_MODULES if m in sys.modules]\n"
        "Library.warm_up()\n"
        "print(before, all(m in sys.modules for m in _LAZY_MODULES), 'engine.dates' in _LAZY_MODULES)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True True"
