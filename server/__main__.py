"""``python -m server`` is the ``als-epro-server`` command."""

from server.cli import main

raise SystemExit(main())
