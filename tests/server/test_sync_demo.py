"""The issue's "Done when": scripts/sync_demo.py passes (1,000 records, twice, over real HTTP)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.live_server import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_sync_demo_script_passes():
    out = subprocess.run([sys.executable, "scripts/sync_demo.py"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1000 accepted on the first upload" in out.stdout
    assert "1000 duplicate on the second upload" in out.stdout
    assert "FAIL" not in out.stdout and out.stdout.strip().endswith("PASS")
