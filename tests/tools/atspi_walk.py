"""Walk the AT-SPI tree of one application and print it as JSON (run with Debian's python3 and
pyatspi, which the project venv does not have): ``/usr/bin/python3 atspi_walk.py APP_NAME``.

Each showing node is one object: role, name, description, focusable. Exit 2 when the application
is not on the accessibility bus (yet)."""

import json
import sys


def walk(node, out, depth=0):
    try:
        states = node.getState()
        import pyatspi
        showing = states.contains(pyatspi.STATE_SHOWING)
        focusable = states.contains(pyatspi.STATE_FOCUSABLE)
        if not showing and depth > 1:
            return
        out.append({"role": node.getRoleName(), "name": node.name or "", "description": node.description or "",
                    "focusable": bool(focusable), "showing": bool(showing), "depth": depth})
        for i in range(node.childCount):
            child = node.getChildAtIndex(i)
            if child is not None:
                walk(child, out, depth + 1)
    except Exception as exc:   # a node that vanished while walking
        out.append({"role": "error", "name": str(exc), "description": "", "focusable": False,
                    "showing": False, "depth": depth})


def main():
    import pyatspi
    wanted = sys.argv[1]
    desktop = pyatspi.Registry.getDesktop(0)
    for i in range(desktop.childCount):
        app = desktop.getChildAtIndex(i)
        if app is not None and app.name == wanted:
            out = []
            walk(app, out)
            print(json.dumps(out, ensure_ascii=False))
            return 0
    print(json.dumps({"apps": [desktop.getChildAtIndex(i).name for i in range(desktop.childCount)]}))
    return 2


if __name__ == "__main__":
    sys.exit(main())
