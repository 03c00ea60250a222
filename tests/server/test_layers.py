"""Dependency direction inside the server: store and tasks are plain Python (no Flask, no Qt)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.live_server import REPO_ROOT

SERVER = REPO_ROOT / "server"
PLAIN = sorted([*(SERVER / "store").rglob("*.py"), *(SERVER / "tasks").rglob("*.py"),
                SERVER / "migrations.py", SERVER / "clock.py", SERVER / "config.py"])


def _roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", PLAIN, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_store_and_tasks_import_neither_flask_nor_qt_nor_the_client(path):
    assert not _roots(path) & {"flask", "werkzeug", "PySide6", "desktop"}


def test_the_command_line_does_not_load_flask_until_it_serves():
    code = "import sys, server.cli; server.cli.build_parser(); print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
