"""What a screen reader gets from every client screen, in both languages (issue 14).

    python -m tests.tools.a11y_tree --out tree.json [--bridge atspi|qaccessible] [--only 06,25]

``atspi``: the window runs on a real X server (Xvfb) with Qt's AT-SPI bridge forced on; an
accessibility bus is started (``at-spi-bus-launcher``) inside the caller's D-Bus session (run under
``dbus-run-session``), and Debian's ``/usr/bin/python3`` with pyatspi walks the application's tree
from outside, as Orca would. ``qaccessible``: the same tree read in-process through
``QAccessible`` (the interface the bridges are built on), for machines without the bridge. The
output says which one was used. :func:`problems` lists every focusable control without a name or
with a name in the other language.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP_NAME = "als-epro-a11y"
WALKER = [os.environ.get("ALS_EPRO_ATSPI_PYTHON", "/usr/bin/python3"), str(HERE / "atspi_walk.py"), APP_NAME]
LAUNCHER = "/usr/libexec/at-spi-bus-launcher"
#: text that may appear in either language: the language button and the text-size sample
BILINGUAL = ("中文 / English", "中文（简体）", "English", "Aa 汉字", "Aa")
HAN = re.compile(r"[\u3400-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
ALLOWED_LATIN = {"ALS", "ALSFRS", "https", "http", "Space", "Return", "Enter", "Tab", "Esc", "Page", "Down",
                 "Backspace", "Up", "PEG"}


def problems(nodes: list[dict], lang: str) -> list[str]:
    """Focusable, showing controls without a name, or named in the other language."""
    out = []
    for n in nodes:
        if not n.get("focusable") or not n.get("showing", True) or n["role"] in ("frame", "window", "application"):
            continue
        name = (n.get("name") or "").strip()
        where = f"{n['role']} {name!r}"
        if not name:
            out.append(f"no name: {n['role']} (description {n.get('description')!r})")
            continue
        rest = name
        for token in BILINGUAL:
            rest = rest.replace(token, " ")
        rest = re.sub(r"https?://\S+", " ", rest)
        rest = re.sub(r"\b[0-9a-fA-F]{8,}\b", " ", rest)        # check codes (sha256) are not words
        if lang == "en" and HAN.search(rest):
            out.append(f"Chinese in an English name: {where}")
        if lang == "zh-CN":
            words = [w for w in LATIN_WORD.findall(rest) if w not in ALLOWED_LATIN]
            if words:
                out.append(f"English in a Chinese name: {where} ({', '.join(words)})")
    return out


def qaccessible_nodes(window) -> list[dict]:
    from desktop.ui.qt import QAccessible
    out: list[dict] = []

    def walk(iface, depth: int) -> None:
        if iface is None or not iface.isValid():
            return
        st = iface.state()
        role = iface.role().name.lower()
        out.append({"role": {"pushbutton": "push button", "radiobutton": "radio button",
                             "editabletext": "text"}.get(role, role),
                    "name": iface.text(QAccessible.Text.Name) or "",
                    "description": iface.text(QAccessible.Text.Description) or "",
                    "focusable": bool(st.focusable), "showing": not bool(st.invisible), "depth": depth})
        if st.invisible:
            return
        for i in range(iface.childCount()):
            walk(iface.child(i), depth + 1)
    walk(QAccessible.queryAccessibleInterface(window), 0)
    return out


def _atspi_nodes(app, bound_s: float = 30.0) -> list[dict] | None:
    """Run the pyatspi walker while this process's event loop keeps answering the bus (a local
    QEventLoop, checking every 20 ms whether the walker finished); None if unreachable."""
    from desktop.ui.qt import QTimer
    from PySide6.QtCore import QEventLoop
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        proc = subprocess.Popen(WALKER, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        loop = QEventLoop()
        timer = QTimer()
        timer.timeout.connect(lambda: (proc.poll() is not None or time.monotonic() > deadline) and loop.quit())
        timer.start(20)
        loop.exec()
        timer.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            return None
        out, _err = proc.communicate()
        if proc.returncode == 0:
            return json.loads(out)
        for _ in range(20):
            app.processEvents()
    return None


def start_bus() -> subprocess.Popen | None:
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS") or not Path(LAUNCHER).exists():
        return None
    return subprocess.Popen([LAUNCHER, "--launch-immediately"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--bridge", choices=("atspi", "qaccessible"), default="atspi")
    p.add_argument("--only", default="", help="comma-separated scene name prefixes")
    args = p.parse_args(argv)
    bus = None
    bridge = args.bridge
    if bridge == "atspi":
        if not os.environ.get("DISPLAY") or not Path(WALKER[0]).exists():
            bridge = "qaccessible"
        else:
            os.environ.update(QT_QPA_PLATFORM="xcb", QT_LINUX_ACCESSIBILITY_ALWAYS_ON="1", QT_ACCESSIBILITY="1")
            bus = start_bus()
            if bus is None:
                bridge = "qaccessible"
    if bridge == "qaccessible":
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        return _run(args, bridge)
    finally:
        if bus is not None:
            bus.terminate()
            bus.wait(timeout=10)


def _run(args, bridge: str) -> int:
    from desktop.store import Store
    from desktop.ui.context import UiContext
    from desktop.ui.main_window import Navigator
    from desktop.ui.ops import busy
    from desktop.ui.qt import QApplication, QEvent
    from tests.tools.scenes import CHART_SCENES, SCENES, clock, pair

    app = QApplication.instance() or QApplication([APP_NAME])
    app.setApplicationName(APP_NAME)
    only = [x for x in args.only.split(",") if x]
    screens, reason = [], ""
    for name, paired, build in SCENES:
        if only and not any(name.startswith(o) for o in only):
            continue
        for lang in ("en", "zh-CN"):
            with tempfile.TemporaryDirectory() as tmp:
                store = Store(Path(tmp) / "data")
                if paired:
                    pair(store, show_scores=name in CHART_SCENES)
                w = Navigator(UiContext(store, clock(), language=lang))
                w.resize(1024, 820)
                w.show()
                w.activateWindow()
                build(w)
                deadline = time.monotonic() + 5
                while busy() and time.monotonic() < deadline:
                    app.processEvents()
                for _ in range(5):
                    app.processEvents()
                nodes = _atspi_nodes(app) if bridge == "atspi" else None
                if bridge == "atspi" and nodes is None:
                    bridge, reason = "qaccessible", "the AT-SPI walker could not reach the application"
                if nodes is None:
                    nodes = qaccessible_nodes(w)
                screens.append({"scene": name, "lang": lang, "screen": w.current_name(), "nodes": nodes,
                                "problems": problems(nodes, lang)})
                w.close()
                w.deleteLater()
                QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
                app.processEvents()
                store.close()
    bridges = sorted({"atspi" if s["nodes"] and "showing" in s["nodes"][0] and bridge == "atspi" else bridge
                      for s in screens})
    Path(args.out).write_text(json.dumps({"bridge": bridge, "bridges": bridges, "reason": reason,
                                          "screens": screens}, ensure_ascii=False, indent=1), encoding="utf-8")
    bad = sum(len(s["problems"]) for s in screens)
    print(f"a11y: {len(screens)} screens via {bridge}{' (' + reason + ')' if reason else ''}, {bad} problems")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
