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
    "engine.index",
    "engine.index.live",
    "engine.dates",
    "engine.answer",
    "engine.llm",
    "engine.autotag",
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
    # `shoebox status` and `shoebox tag list` must start fast: torch loads only when a model is used.
    code = "import sys, engine.cli, engine.library; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
