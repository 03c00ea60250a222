"""Coded errors with the contract's JSON body (contract §2).

``{"ok": false, "status": 4xx, "code": "dotted.code", "error": "human text",
   "errors": [{"field": "payload.items.5a", "rule": "...", "message": "..."}]}``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.messages import t


@dataclass(frozen=True)
class FieldError:
    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


@dataclass
class EproError(Exception):
    """An error with a stable dotted code, an HTTP status and optional field errors."""

    code: str
    status: int = 400
    detail: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.code)

    def message(self, lang: str | None = None) -> str:
        base = t(f"error.{self.code}", lang)
        if base == f"error.{self.code}":
            base = self.detail or self.code
        elif self.detail:
            base = f"{base} ({self.detail})"
        return base

    def body(self, lang: str | None = None) -> dict[str, Any]:
        return error_body(self.status, self.code, self.message(lang), self.errors, **self.extra)


def error_body(status: int, code: str, error: str, errors: list[FieldError] | list[dict] = (),
               **extra: Any) -> dict[str, Any]:
    items = [e.as_dict() if isinstance(e, FieldError) else dict(e) for e in errors]
    return {"ok": False, "status": status, "code": code, "error": error, "errors": items, **extra}


def validation_error(errors: list[FieldError], code: str = "validation.invalid") -> EproError:
    return EproError(code=code, status=400, errors=errors)
