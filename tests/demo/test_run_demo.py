"""`make demo` without a terminal walks through the system once and exits: entry made, sent, received."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_demo_walk_through(tmp_path):
    db = tmp_path / "demo" / "als-epro-demo.sqlite"
    out = subprocess.run([sys.executable, "packaging/demo/run_demo.py", "--once", "--port", "0", "--db", str(db)],
                         cwd=ROOT, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
                         env={k: v for k, v in __import__("os").environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")})
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "DEMO" in text and "paired as participant 001-001" in text
    assert "state now 'received', receipt server_seq" in text
    assert "no display here" in text
    assert "page with the DEMO banner, nosebleed flag shown" in text
    assert "verify OK" in text
    assert "alerts: urgent flag for 001-003 planted; its mail to investigator@demo.als-epro" in text
    eml = text.split("landed in ", 1)[1].split()[0]
    assert eml.endswith(".eml") and "001-003" in Path(eml).read_text("utf-8")
    assert db.exists() and f"demo database: {db}" in text
