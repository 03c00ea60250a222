"""`make test`/`make demo` set up Debian packages: as root they install, otherwise they fail loudly."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "packaging" / "sysdeps.sh"


def fake_bin(tmp_path, uid, installed):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    status = "install ok installed" if installed else ""
    (bin_dir / "dpkg-query").write_text(f"#!/bin/sh\nprintf '{status}'\n[ -n '{status}' ]\n")
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho apt-get \"$@\" >> \"$APT_LOG\"\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "APT_LOG": str(tmp_path / "apt.log")}


def test_non_root_without_packages_fails_and_prints_the_exact_command(tmp_path):
    env = fake_bin(tmp_path, 1000, installed=False)
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert "apt-get install -y --no-install-recommends" in out.stderr
    for pkg in ("python3-venv", "xvfb", "libxcb-icccm4", "fonts-wqy-microhei", "chromium", "poppler-utils",
                "at-spi2-core", "python3-pyatspi", "dbus", "speech-dispatcher", "espeak-ng"):
        assert pkg in out.stderr
    assert not (tmp_path / "apt.log").exists()


def test_root_installs_what_is_missing(tmp_path):
    env = fake_bin(tmp_path, 0, installed=False)
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    log = (tmp_path / "apt.log").read_text()
    assert "update" in log and "install" in log and "fonts-wqy-microhei" in log


def test_nothing_to_do_when_everything_is_installed(tmp_path):
    env = fake_bin(tmp_path, 1000, installed=True)
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == ""
