"""The frozen client's entry point (PyInstaller runs this file as ``__main__``)."""

from desktop.app import main

raise SystemExit(main())
