"""The PyInstaller bundle of the desktop client builds and starts without Python (issue 7).

The bundle is built once per session from ``packaging/desktop/als-epro.spec`` into a temporary
folder (about 30 s here), unless ``dist/als-epro`` is newer than every source file it is made from,
in which case that fresh ``make bundle`` output is used. Then the frozen executable runs offscreen
with ``--smoke --data-dir`` in both languages and must print the first screen line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop.store.keys import write_site_policy
from tests.support.live_server import REPO_ROOT

pytestmark = pytest.mark.slow

SPEC = REPO_ROOT / "packaging" / "desktop" / "als-epro.spec"
EXE_NAME = "als-epro.exe" if sys.platform == "win32" else "als-epro"
SOURCES = ("desktop", "shared", "packaging/desktop")
BUILD_TIMEOUT_S = 600


def _newest_source_mtime() -> float:
    return max(p.stat().st_mtime for folder in SOURCES for p in (REPO_ROOT / folder).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    made = REPO_ROOT / "dist" / "als-epro"
    if (made / EXE_NAME).is_file() and (made / EXE_NAME).stat().st_mtime > _newest_source_mtime():
        return made
    pyinstaller = Path(sys.executable).with_name("pyinstaller")
    assert pyinstaller.exists(), "pyinstaller is not installed (pip install -e '.[package]')"
    work = tmp_path_factory.mktemp("bundle")
    started = time.monotonic()
    proc = subprocess.run([str(pyinstaller), "--noconfirm", "--log-level", "WARN", "--distpath", str(work / "dist"),
                           "--workpath", str(work / "build"), str(SPEC)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=BUILD_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"bundle built in {time.monotonic() - started:.0f} s")
    return work / "dist" / "als-epro"


def _run(bundle: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYTHONPATH", "PYTHONHOME") and not k.startswith("ALS_EPRO")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    # run from an empty folder so nothing can be imported from the repository by accident
    return subprocess.run([str(bundle / EXE_NAME), *args], cwd=bundle.parent, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_frozen_client_starts_offscreen_and_shows_the_first_screen(bundle, tmp_path, lang):
    data_dir = tmp_path / "data"
    write_site_policy(data_dir, True)       # no keyring here: the site's setting allows a plain store
    proc = _run(bundle, "--smoke", "--data-dir", str(data_dir), "--lang", lang)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    assert re.fullmatch(rf"als-epro \S+ ok: screen=pairing paired=no lang={lang} data-dir={re.escape(str(data_dir))}",
                        lines[0]), lines[0]
    assert data_dir.is_dir() and any(data_dir.iterdir()), "the client made no local database"


def test_the_frozen_client_without_a_keyring_refuses_to_store_anything(bundle, tmp_path):
    data_dir = tmp_path / "data"
    proc = _run(bundle, "--smoke", "--data-dir", str(data_dir))
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "refused: store=keyring" in proc.stderr        # the SQLCipher module loaded, then refused
    assert not (data_dir / "als-epro.sqlite").exists()


def test_the_bundle_holds_both_languages_data_and_icon_but_no_server_code(bundle):
    internal = bundle / "_internal"
    for rel in ("shared/instruments/data/alsfrs_r/draft-1.json", "shared/instruments/data/nasal_symptoms/draft-1.json",
                "shared/instruments/data/dose_confirmation/draft-1.json", "shared/messages/core.json",
                "shared/messages/desktop.json", "shared/protocols/nct06598202.toml", "als-epro.png"):
        assert (internal / rel).is_file(), rel
    assert sorted(p.name for p in (internal / "shared" / "messages").glob("*.json")) == \
        sorted(p.name for p in (REPO_ROOT / "shared" / "messages").glob("*.json"))
    listing = subprocess.run([str(Path(sys.executable).with_name("pyi-archive_viewer")), "-r", "-b",
                              str(bundle / EXE_NAME)], capture_output=True, text=True, timeout=120).stdout
    modules = {line.strip().split(".")[0] for line in listing.splitlines() if line.startswith(" ")}
    assert {"desktop", "shared", "PySide6"} <= modules
    assert not modules & {"server", "flask", "werkzeug", "tests"}, "server code must not ship to participants"
