"""The client's translation call: the shared catalogue, with a singular form where one exists
(``key.one`` is used when ``n == 1``: "1 entry waiting", not "1 entries waiting")."""

from __future__ import annotations

from shared.messages import has, t


def tr(key: str, lang: str | None, /, **params: object) -> str:
    if params.get("n") == 1 and has(f"{key}.one"):
        key = f"{key}.one"
    return t(key, lang, **params)
