"""The status line (ux rule 22): how many entries wait, since when, and when the site last received one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from desktop.services.i18n import tr as t

from desktop.services.fmt import when
from desktop.store import Store

WAIT_WARNING = timedelta(hours=24)


@dataclass
class SyncStatus:
    paired: bool
    waiting: int
    oldest_waiting: datetime | None
    last_received: datetime | None
    attention: int
    total: int
    revoked: str | None          # "revoked" | "token_invalid" | None
    overdue: bool                # something has waited more than 24 hours
    token_in_file: bool = False

    def sentence(self, now: datetime, lang: str) -> str:
        if not self.paired:
            return t("status.not_paired", lang)
        if self.revoked:
            return t(f"status.{self.revoked}", lang, n=self.waiting)
        last = (t("status.last_received", lang, when=when(self.last_received, now, lang))
                if self.last_received else t("status.never_received", lang))
        if self.total == 0:
            return t("status.no_entries", lang)
        if self.waiting == 0:
            return t("status.all_received", lang, last=last) if self.last_received else t("status.nothing_waiting", lang)
        if self.overdue:
            head = t("status.overdue", lang, n=self.waiting)
        else:
            head = t("status.waiting", lang, n=self.waiting,
                     since=when(self.oldest_waiting, now, lang) if self.oldest_waiting else "")
        return f"{head}{t('status.separator', lang)}{last}"


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def sync_status(store: Store, now: datetime, token_in_file: bool = False) -> SyncStatus:
    pairing = store.settings.pairing()
    if pairing is None:
        return SyncStatus(False, 0, None, None, 0, 0, None, False, token_in_file)
    entries = store.outbox.entries(pairing.device_id)
    waiting = [e for e in entries if e.waiting]
    oldest = min((_parse(e.created_at) for e in waiting), default=None, key=lambda d: d or now)
    received = [_parse((e.receipt or {}).get("received_at")) for e in entries if e.state == "received"]
    last = max((d for d in received if d is not None), default=None)
    revoked = (store.settings.get("revoked") or {}).get("outcome")
    overdue = oldest is not None and now - oldest > WAIT_WARNING
    attention = sum(1 for e in entries if e.state == "needs_attention")
    return SyncStatus(True, len(waiting), oldest, last, attention, len(entries), revoked, overdue, token_in_file)
