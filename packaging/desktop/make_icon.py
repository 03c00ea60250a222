"""Draw the ALS ePRO icon with Qt (no image files in the repository, no extra packages).

    python packaging/desktop/make_icon.py OUT_DIR

writes ``als-epro.png`` (256 px), ``als-epro-512.png``, ``als-epro.ico`` (Windows) and
``als-epro.icns`` (macOS) into OUT_DIR. The spec runs it at build time. The picture: a diary page
with a tick on the client's selection blue, and a drop for the nasal drops.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BLUE, WHITE, GREEN, DROP = "#0B4F8A", "#FFFFFF", "#1B5E20", "#7FB3E6"


def draw(size: int):
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen

    img = QImage(size, size, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    s = size / 256.0
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(BLUE))
    p.drawRoundedRect(QRectF(8 * s, 8 * s, 240 * s, 240 * s), 48 * s, 48 * s)
    # the diary page
    p.setBrush(QColor(WHITE))
    p.drawRoundedRect(QRectF(56 * s, 48 * s, 132 * s, 164 * s), 14 * s, 14 * s)
    p.setPen(QPen(QColor(BLUE), 8 * s, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    for y in (84, 108):
        p.drawLine(QPointF(78 * s, y * s), QPointF(166 * s, y * s))
    # the tick
    p.setPen(QPen(QColor(GREEN), 16 * s, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                  Qt.PenJoinStyle.RoundJoin))
    tick = QPainterPath(QPointF(84 * s, 160 * s))
    tick.lineTo(QPointF(110 * s, 184 * s))
    tick.lineTo(QPointF(160 * s, 132 * s))
    p.drawPath(tick)
    # the drop
    p.setPen(QPen(QColor(WHITE), 6 * s))
    p.setBrush(QColor(DROP))
    drop = QPainterPath(QPointF(200 * s, 150 * s))
    drop.cubicTo(QPointF(184 * s, 176 * s), QPointF(178 * s, 190 * s), QPointF(178 * s, 200 * s))
    drop.arcTo(QRectF(178 * s, 178 * s, 44 * s, 44 * s), 180, 180)
    drop.cubicTo(QPointF(222 * s, 190 * s), QPointF(216 * s, 176 * s), QPointF(200 * s, 150 * s))
    p.drawPath(drop)
    p.end()
    return img


def make_icons(out_dir: str | Path) -> dict[str, Path]:
    """Write the icon files; returns their paths by format. Needs a Q(Gui)Application."""
    from PySide6.QtGui import QImageWriter

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"png": out / "als-epro.png", "png512": out / "als-epro-512.png", "ico": out / "als-epro.ico",
             "icns": out / "als-epro.icns"}
    images = {"png": draw(256), "png512": draw(512), "ico": draw(256), "icns": draw(512)}
    for key, path in files.items():
        writer = QImageWriter(str(path), b"png" if key.startswith("png") else key.encode())
        if not writer.write(images[key]):
            raise RuntimeError(f"could not write {path}: {writer.errorString()}")
    return files


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    files = make_icons(args[0])
    del app
    for path in files.values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
