"""Dependency direction: shared/ and the client's store and sync never import Qt or Flask."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"PySide6", "flask", "werkzeug", "shiboken6", "server", "desktop"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def python_files(*parts):
    folder = ROOT.joinpath(*parts)
    return sorted(folder.rglob("*.py")) if folder.exists() else []


@pytest.mark.parametrize("path", python_files("shared"), ids=lambda p: str(p.relative_to(ROOT)))
def test_shared_imports_neither_qt_nor_flask_nor_either_side(path):
    assert not imported_roots(path) & FORBIDDEN


@pytest.mark.parametrize("path", python_files("desktop", "store") + python_files("desktop", "sync")
                         + python_files("desktop", "services"), ids=lambda p: str(p.relative_to(ROOT)))
def test_client_store_and_sync_never_import_qt(path):
    assert not imported_roots(path) & {"PySide6", "shiboken6", "flask", "server"}


def test_importing_shared_loads_no_gui_or_web_framework():
    code = ("import sys, shared.schemas, shared.scoring, shared.schedule, shared.protocol, shared.messages, "
            "shared.instruments; bad=[m for m in sys.modules if m.split('.')[0] in ('PySide6','flask')]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""
