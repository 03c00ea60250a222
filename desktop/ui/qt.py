"""The single Qt import shim: every other module imports Qt names from here."""

from PySide6.QtCore import (  # noqa: F401
    QEvent, QLocale, QMargins, QObject, QPoint, QRect, QRunnable, QSize, Qt, QThreadPool, QTimer, Signal,
    Slot,
)
from PySide6.QtGui import (  # noqa: F401
    QAccessible, QAction, QColor, QFont, QFontDatabase, QGuiApplication, QIcon, QKeyEvent, QKeySequence,
    QPainter, QPalette, QPen, QPixmap, QShortcut, QTextLayout,
)
from PySide6.QtWidgets import (  # noqa: F401
    QAbstractButton, QAbstractScrollArea, QApplication, QButtonGroup, QFileDialog, QFrame, QGridLayout,
    QHBoxLayout, QLabel, QLayout, QLineEdit, QMainWindow, QMessageBox, QPlainTextEdit, QProgressBar,
    QPushButton, QRadioButton, QScrollArea, QSizePolicy, QStackedWidget, QSystemTrayIcon, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)
from shiboken6 import isValid  # noqa: F401

try:  # Qt 6.8+: ask a screen reader to speak a message
    from PySide6.QtGui import QAccessibleAnnouncementEvent  # noqa: F401
except ImportError:  # pragma: no cover
    QAccessibleAnnouncementEvent = None  # type: ignore[assignment,misc]


def announce(widget: QWidget, message: str, assertive: bool = False) -> None:
    """Have assistive technology speak ``message`` (polite by default). Does nothing without AT."""
    if QAccessibleAnnouncementEvent is None or not QAccessible.isActive():
        return
    event = QAccessibleAnnouncementEvent(widget, message)
    if assertive:
        event.setPoliteness(QAccessible.AnnouncementPoliteness.Assertive)
    QAccessible.updateAccessibility(event)
