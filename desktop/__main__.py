"""``python -m desktop`` runs the client (same as the ``als-epro`` console script)."""

from desktop.app import main

raise SystemExit(main())
