"""The icon is drawn with Qt at build time: every format reads back at its size and is not blank."""

from __future__ import annotations

import importlib.util

from tests.support.live_server import REPO_ROOT


def _make_icon_module():
    spec = importlib.util.spec_from_file_location("make_icon", REPO_ROOT / "packaging" / "desktop" / "make_icon.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_icon_files_read_back_with_the_client_colours(qapp, tmp_path):
    from PySide6.QtGui import QColor, QImage

    files = _make_icon_module().make_icons(tmp_path)
    sizes = {"png": 256, "png512": 512, "ico": 256, "icns": 512}
    for key, path in files.items():
        img = QImage(str(path))
        assert not img.isNull() and (img.width(), img.height()) == (sizes[key], sizes[key]), key
        s = sizes[key] / 256
        assert img.pixelColor(int(30 * s), int(128 * s)) == QColor("#0B4F8A"), key     # the blue tile
        assert img.pixelColor(int(120 * s), int(60 * s)) == QColor("#FFFFFF"), key     # the page
        assert img.pixelColor(1, 1).alpha() == 0, key                                 # rounded corner
