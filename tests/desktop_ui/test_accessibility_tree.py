"""Every focusable control has a name in the language shown, as a screen reader sees it (issue 14)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import a11y_tree
from tests.tools.scenes import SCENES

ROOT = Path(__file__).resolve().parents[2]
FAST = ("01-pairing", "08-alsfrs-item", "17-dose-time", "25-settings", "29-access")


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
@pytest.mark.parametrize("scene", FAST)
def test_qaccessible_names_in_the_language_shown(make_app, scene, lang):
    name, paired, build = next(s for s in SCENES if s[0] == scene)
    app = make_app(paired=paired, lang=lang)
    build(app.w)
    app.settle()
    nodes = a11y_tree.qaccessible_nodes(app.w)
    assert sum(n["focusable"] for n in nodes) >= 4
    assert a11y_tree.problems(nodes, lang) == []


def test_the_checker_catches_a_missing_name_and_the_other_language():
    nodes = [{"role": "push button", "name": "", "focusable": True},
             {"role": "push button", "name": "Next question →", "focusable": True},
             {"role": "push button", "name": "下一题 →", "focusable": True},
             {"role": "push button", "name": "语言：中文 / English", "focusable": True}]
    assert len(a11y_tree.problems(nodes, "zh-CN")) == 2
    assert len(a11y_tree.problems(nodes, "en")) == 3       # "语言：" is Chinese even beside "English"


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("dbus-run-session") or not shutil.which("xvfb-run"),
                    reason="needs dbus-run-session and xvfb-run (packaging/sysdeps.sh installs them)")
def test_atspi_tree_of_every_screen_in_both_languages(tmp_path):
    out = tmp_path / "tree.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY")}
    run = subprocess.run(["dbus-run-session", "--", "xvfb-run", "-a", "-s", "-screen 0 1280x1024x24",
                          sys.executable, "-m", "tests.tools.a11y_tree", "--out", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    result = json.loads(out.read_text(encoding="utf-8"))
    print(f"bridge used: {result['bridge']} {result['reason']}")
    assert result["bridge"] == "atspi", (result["reason"], run.stderr[-2000:])
    assert len(result["screens"]) == 2 * len(SCENES)
    bad = {f"{s['scene']}.{s['lang']}": s["problems"] for s in result["screens"] if s["problems"]}
    assert bad == {}
    for s in result["screens"]:
        focusable = [n for n in s["nodes"] if n["focusable"] and n["role"] not in ("frame", "window")]
        assert focusable, s["scene"]
    assert run.returncode == 0
