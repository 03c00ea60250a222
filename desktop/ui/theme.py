"""One application font and one stylesheet, built from the text size and language (ux rules 6–10).

Sizes are px at 100 %; every size is multiplied by the chosen step (100/125/150/200 %).
"""

from __future__ import annotations

from desktop.ui.qt import QApplication, QFont, QFontDatabase

FAMILIES = {
    "zh-CN": ["Microsoft YaHei UI", "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Segoe UI", "Noto Sans",
              "DejaVu Sans"],
    "en": ["Segoe UI", "Noto Sans", "DejaVu Sans", "Microsoft YaHei UI", "Noto Sans CJK SC",
           "WenQuanYi Micro Hei"],
}
SIZES = {"body": 18, "option": 20, "stem": 24, "title": 28, "small": 16, "code": 28}

INK, SECONDARY, BORDER, SELECTED = "#1A1A1A", "#5C5C5C", "#4D4D4D", "#0B4F8A"
CHIPS = {"green": ("#1B5E20", "#E8F5E9"), "amber": ("#8A4B00", "#FFF4E0"), "red": ("#B00020", "#FDECEC"),
         "blue": (SELECTED, "#E6EFF8"), "grey": ("#3D3D3D", "#EEEEEE")}


def chinese_font_available() -> bool:
    return bool(QFontDatabase.families(QFontDatabase.WritingSystem.SimplifiedChinese))


def px(name: str, scale: float) -> int:
    return round(SIZES[name] * scale)


def chrome_scale(scale: float) -> float:
    """The header and status bar grow half as fast as the page (200 % text → 150 % chrome), so at
    large sizes the page keeps most of the window; their buttons stay at least 44 px."""
    return 1 + (scale - 1) / 2


def app_font(lang: str, scale: float) -> QFont:
    font = QFont()
    font.setFamilies(FAMILIES.get(lang, FAMILIES["en"]))
    font.setPixelSize(px("body", scale))
    return font


def stylesheet(scale: float) -> str:
    s = lambda n: px(n, scale)  # noqa: E731
    c = lambda n: px(n, chrome_scale(scale))  # noqa: E731
    h44, h64 = round(44 * max(1.0, scale * 0.9)), round(64 * max(1.0, scale * 0.85))
    chips = "\n".join(
        f'QLabel[chip="{k}"] {{ color: {fg}; background: {bg}; border: 2px solid {fg}; border-radius: 6px;'
        f' padding: 4px 10px; font-size: {s("small")}px; font-weight: 600; }}\n'
        f'QFrame[banner="{k}"] {{ background: {bg}; border: 2px solid {fg}; border-radius: 8px; }}\n'
        f'QFrame[banner="{k}"] QLabel {{ color: {fg}; }}'
        for k, (fg, bg) in CHIPS.items())
    return f"""
QWidget {{ color: {INK}; font-size: {s("body")}px; }}
QMainWindow, QWidget#page, QScrollArea, QScrollArea > QWidget > QWidget {{ background: #FFFFFF; }}
QLabel#title {{ font-size: {s("title")}px; font-weight: 700; }}
QLabel#stem {{ font-size: {s("stem")}px; font-weight: 600; }}
QLabel#heading {{ font-size: {s("stem")}px; font-weight: 700; }}
QLabel[role="small"] {{ font-size: {s("small")}px; color: {SECONDARY}; }}
QLabel[role="error"] {{ color: #B00020; font-weight: 600; }}
QLabel[role="strong"] {{ font-weight: 700; }}
QLabel#phone {{ font-size: {max(28, s("code"))}px; font-weight: 700; }}
QFrame#header {{ background: #F4F6F8; border-bottom: 2px solid #C8CDD2; }}
QFrame#statusbar {{ background: #F4F6F8; border-top: 2px solid #C8CDD2; }}
QFrame#statusbar[overdue="true"] {{ background: #FFF4E0; border-top: 3px solid #8A4B00; }}
QFrame#statusbar[overdue="true"] QLabel#statusText {{ color: #8A4B00; font-weight: 700; }}
QFrame#card {{ border: 2px solid #C8CDD2; border-radius: 10px; background: #FFFFFF; }}
QFrame#reviewRow {{ border-bottom: 1px solid #C8CDD2; }}
QFrame#reviewRow[missing="true"] {{ background: #FDECEC; border: 2px solid #B00020; border-radius: 6px; }}
QPushButton {{ min-height: {h44}px; padding: 6px 16px; border: 2px solid {BORDER};
  border-radius: 8px; background: #F2F2F2; color: {INK}; }}
QPushButton:hover {{ background: #E8E8E8; }}
QPushButton:focus {{ border: 3px solid {INK}; background: #FFF6C8; }}
QPushButton:disabled {{ color: {SECONDARY}; background: #EEEEEE; border: 2px dashed #9E9E9E; }}
QPushButton[primary="true"] {{ background: {SELECTED}; color: #FFFFFF; border: 2px solid {SELECTED};
  font-weight: 700; }}
QPushButton QLabel {{ background: transparent; }}
QPushButton[primary="true"] QLabel {{ color: #FFFFFF; font-weight: 700; }}
QPushButton[off="true"] QLabel {{ color: #3D3D3D; font-weight: 400; }}
QPushButton[primary="true"]:focus {{ border: 3px solid {INK}; background: #093F6E; }}
QPushButton[primary="true"]:disabled {{ background: #DADADA; color: #3D3D3D; border: 2px dashed #7A7A7A; }}
QPushButton[big="true"] {{ min-height: {h64}px; font-size: {s("option")}px; font-weight: 600; }}
QPushButton[option="true"] {{ min-height: {h64 - 12}px; padding: 4px 8px; background: #FFFFFF; }}
QPushButton[option="true"] QLabel {{ font-size: {s("option")}px; font-weight: 500; background: transparent; }}
QPushButton[option="true"] QLabel#num {{ border: 2px solid {BORDER}; border-radius: 6px; font-weight: 700;
  background: #FFFFFF; color: {INK}; min-width: {max(40, s("option") + 20)}px; max-width: {max(40, s("option") + 20)}px;
  min-height: {max(40, s("option") + 20)}px; max-height: {max(40, s("option") + 20)}px; }}
QPushButton[selected="true"] {{ border: 3px solid {SELECTED}; background: #E6EFF8; font-weight: 700; }}
QPushButton[option="true"][selected="true"] {{ background: {SELECTED}; border: 3px solid {SELECTED}; }}
QPushButton[option="true"][selected="true"]:focus {{ border: 4px solid {INK}; }}
QPushButton[option="true"][selected="true"] QLabel {{ color: #FFFFFF; font-weight: 700; }}
QPushButton[option="true"][selected="true"] QLabel#num {{ color: {SELECTED}; background: #FFFFFF;
  border-color: #FFFFFF; }}
QPushButton[link="true"] {{ background: transparent; border: 2px solid transparent; color: {SELECTED};
  text-decoration: underline; font-size: {s("small")}px; }}
QPushButton[link="true"]:focus {{ border: 3px solid {INK}; background: #FFF6C8; }}
QLineEdit, QPlainTextEdit {{ min-height: {h44}px; border: 2px solid {BORDER}; border-radius: 6px;
  padding: 4px 8px; background: #FFFFFF; selection-background-color: {SELECTED}; }}
QLineEdit:focus, QPlainTextEdit:focus {{ border: 3px solid {INK}; }}
QLineEdit#code {{ font-family: "DejaVu Sans Mono", "Noto Sans Mono", monospace; font-size: {s("code")}px;
  letter-spacing: 2px; }}
QRadioButton {{ min-height: {h44}px; spacing: 12px; }}
QRadioButton::indicator {{ width: {s("option")}px; height: {s("option")}px; border: 2px solid {BORDER};
  border-radius: {s("option") // 2 + 1}px; background: #FFFFFF; }}
QRadioButton::indicator:checked {{ background: qradialgradient(cx:0.5, cy:0.5, radius:0.5, fx:0.5, fy:0.5,
  stop:0 {SELECTED}, stop:0.55 {SELECTED}, stop:0.6 #FFFFFF, stop:1 #FFFFFF); border: 2px solid {SELECTED}; }}
QRadioButton:focus {{ border: 3px solid {INK}; border-radius: 6px; background: #FFF6C8; }}
QScrollBar:vertical {{ width: {max(16, s("small"))}px; background: #EEEEEE; border: none; }}
QScrollBar::handle:vertical {{ background: #8A8A8A; border-radius: 6px; min-height: 40px; margin: 2px; }}
QScrollBar::add-line:vertical, QScrollBar::sub-line:vertical {{ height: 0px; }}
QProgressBar {{ border: 2px solid {BORDER}; border-radius: 6px; min-height: 14px; max-height: 14px;
  background: #FFFFFF; }}
QProgressBar::chunk {{ background: {SELECTED}; }}
{chips}
QFrame#header QLabel, QFrame#statusbar QLabel {{ font-size: {c("body")}px; }}
QFrame#header QLabel#title {{ font-size: {c("title")}px; font-weight: 700; }}
QFrame#header QLabel[chip], QFrame#statusbar QLabel[role="small"] {{ font-size: {c("small")}px; }}
QFrame#header QPushButton, QFrame#statusbar QPushButton {{ min-height: 44px; padding: 2px 10px; }}
"""


#: high contrast (ux rule 9): black ground, white text, yellow borders, selection and focus
HIGH_CONTRAST = {
    "#FFFFFF": "#000000", "#F4F6F8": "#000000", "#F2F2F2": "#000000", "#EEEEEE": "#000000",
    "#E8E8E8": "#262626", "#FFF6C8": "#3A3A00", "#DADADA": "#000000", "#E6EFF8": "#000000",
    "#E8F5E9": "#000000", "#FFF4E0": "#000000", "#FDECEC": "#000000",
    INK: "#FFFFFF", SECONDARY: "#FFFFFF", "#3D3D3D": "#FFFFFF", BORDER: "#FFFF00", "#C8CDD2": "#FFFF00",
    "#9E9E9E": "#FFFF00", "#7A7A7A": "#FFFF00", "#8A8A8A": "#FFFF00", SELECTED: "#FFFF00",
    "#093F6E": "#FFFF00", "#1B5E20": "#7CFC00", "#8A4B00": "#FFD700", "#B00020": "#FF8A80",
}


def recolour(css: str, mapping: dict[str, str]) -> str:
    """Swap every colour of ``mapping`` in one pass (so a swapped colour is never swapped again)."""
    import re
    pattern = re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)),
                         re.IGNORECASE)
    upper = {k.upper(): v for k, v in mapping.items()}
    return pattern.sub(lambda m: upper[m.group(0).upper()], css)


def system_high_contrast() -> bool:
    """Qt 6.10+: the platform's high-contrast setting."""
    try:
        from desktop.ui.qt import QGuiApplication, Qt
        hints = QGuiApplication.styleHints()
        return hints.accessibility().contrastPreference() == Qt.ContrastPreference.HighContrast
    except (AttributeError, RuntimeError):
        return False


def apply_theme(app: QApplication, lang: str, scale: float, high_contrast: bool = False) -> None:
    app.setFont(app_font(lang, scale))
    css = stylesheet(scale)
    if high_contrast:
        css = recolour(css, HIGH_CONTRAST).replace("border: 2px solid", "border: 3px solid")
    app.setStyleSheet(css)
