"""ALS ePRO shared core: instruments, scoring, schemas, protocol, schedule, messages.

Used by both the Flask server and the PySide6 client. Imports neither Qt nor Flask.
"""

__version__ = "0.1.0"
