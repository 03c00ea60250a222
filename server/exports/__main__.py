"""``python -m server.exports verify DIR``: check an export folder against its manifest."""

from __future__ import annotations

import sys

from server.exports.manifest import verify_manifest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "verify":
        print("usage: python -m server.exports verify DIR", file=sys.stderr)
        return 2
    problems = verify_manifest(args[1])
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"OK: every file in {args[1]} matches its manifest")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
