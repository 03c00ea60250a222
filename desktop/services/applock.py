"""The optional app lock (PS-06): a 4–8 digit PIN, asked after the computer was idle for a chosen time.

Plain Python over the store (no Qt). The PIN is kept only as an argon2id hash in the (encrypted)
local database. Wrong PINs never lose anything: after every fifth wrong PIN in a row the lock pauses
for a time that doubles (30 s, 60 s, 2 min … at most an hour); the count and the pause are stored, so
restarting the program does not reset them. The right PIN resets both. The site resets a forgotten
PIN by re-pairing (:func:`desktop.sync.pairing.pair_device` with a new code clears it, see
:meth:`AppLock.clear_after_pairing`).

What the PIN protects against: someone else at this computer (a family member) opening the diary.
It is not what keeps a copied database unreadable — that is the keyring key (:mod:`desktop.store.keys`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from desktop.clock import Clock, utc_iso
from desktop.store import Store

MIN_DIGITS, MAX_DIGITS = 4, 8
TRIES_BEFORE_PAUSE = 5
FIRST_PAUSE_S = 30
MAX_PAUSE_S = 3600
IDLE_CHOICES_MIN = (2, 5, 10, 15, 30)
DEFAULT_IDLE_MIN = 5
_SETTING, _FAILURES = "app_lock", "app_lock_failures"
# argon2id, OWASP's second recommended setting (19 MiB, t=2) — a PIN check is rare and interactive
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


class BadPin(ValueError):
    """A PIN that is not 4 to 8 digits."""


def normalize_pin(text: str) -> str:
    """Digits as typed on any keyboard (full-width ０-９ from a Chinese input method too), or BadPin."""
    pin = unicodedata.normalize("NFKC", text or "").strip()
    if not (MIN_DIGITS <= len(pin) <= MAX_DIGITS) or not all("0" <= c <= "9" for c in pin):
        raise BadPin(text)
    return pin


@dataclass(frozen=True)
class Attempt:
    ok: bool
    tries_left: int = TRIES_BEFORE_PAUSE     # before the next pause
    paused_s: int = 0                        # > 0: no PIN is looked at for this long


class AppLock:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # --- setting ----------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool((self.store.settings.get(_SETTING) or {}).get("pin_hash"))

    @property
    def idle_minutes(self) -> int:
        return int((self.store.settings.get(_SETTING) or {}).get("idle_minutes") or DEFAULT_IDLE_MIN)

    def set_pin(self, pin: str, idle_minutes: int = DEFAULT_IDLE_MIN) -> None:
        pin = normalize_pin(pin)
        if idle_minutes not in IDLE_CHOICES_MIN:
            raise ValueError(f"idle minutes must be one of {IDLE_CHOICES_MIN}")
        self.store.settings.update({_SETTING: {"pin_hash": _HASHER.hash(pin), "idle_minutes": idle_minutes,
                                               "set_at": utc_iso(self.clock.now())},
                                    _FAILURES: None})

    def set_idle_minutes(self, idle_minutes: int) -> None:
        if idle_minutes not in IDLE_CHOICES_MIN or not self.enabled:
            raise ValueError("no PIN, or not an offered idle time")
        self.store.settings.set(_SETTING, {**self.store.settings.get(_SETTING), "idle_minutes": idle_minutes})

    def remove(self) -> None:
        self.store.settings.update({_SETTING: None, _FAILURES: None})

    def clear_after_pairing(self) -> None:
        """The site's reset: a new pairing (a code only the site can issue) removes the PIN."""
        self.remove()

    # --- unlocking --------------------------------------------------------------------------------
    def _failures(self) -> dict[str, Any]:
        return dict(self.store.settings.get(_FAILURES) or {"count": 0, "pauses": 0, "paused_until": None})

    def paused_for(self, now: datetime | None = None) -> int:
        """Seconds left in the current pause (0: a PIN can be tried)."""
        until = self._failures().get("paused_until")
        if not until:
            return 0
        left = (datetime.fromisoformat(until) - (now or self.clock.now())).total_seconds()
        return max(0, int(left + 0.999))

    def try_pin(self, text: str) -> Attempt:
        now = self.clock.now()
        paused = self.paused_for(now)
        if paused:
            return Attempt(False, 0, paused)
        state = (self.store.settings.get(_SETTING) or {})
        try:
            ok = _HASHER.verify(state.get("pin_hash") or "", normalize_pin(text))
        except (BadPin, VerificationError, InvalidHashError):
            ok = False
        if ok:
            self.store.settings.set(_FAILURES, None)
            return Attempt(True)
        f = self._failures()
        f["count"] = int(f.get("count", 0)) + 1
        if f["count"] % TRIES_BEFORE_PAUSE:
            self.store.settings.set(_FAILURES, f)
            return Attempt(False, TRIES_BEFORE_PAUSE - f["count"] % TRIES_BEFORE_PAUSE)
        f["pauses"] = int(f.get("pauses", 0)) + 1
        pause = min(MAX_PAUSE_S, FIRST_PAUSE_S * 2 ** (f["pauses"] - 1))
        f["paused_until"] = utc_iso(now + timedelta(seconds=pause))
        self.store.settings.set(_FAILURES, f)
        return Attempt(False, 0, pause)


def reset_by_pairing(store: Store, tokens: Any, clock: Clock, code: str,
                     sync: Any = None, **pair_options: Any) -> Any:
    """The site's reset of a forgotten PIN: a new pairing code (issued by the site) pairs this
    computer again and removes the PIN. Nothing is lost: waiting entries are sent first with the
    old token (``sync``: a callable running one sync); if any are still waiting the reset is refused
    (:class:`~desktop.sync.pairing.StillWaiting`) and nothing changes. Unfinished drafts move to the
    new device. Returns the new :class:`Pairing`."""
    from desktop.sync.pairing import StillWaiting, pair_device

    old = store.settings.pairing()
    if old is None:
        raise ValueError("not paired")
    if store.outbox.waiting(old.device_id) and sync is not None:
        sync()
    waiting = len(store.outbox.waiting(old.device_id))
    if waiting:
        raise StillWaiting(waiting)
    new = pair_device(store, tokens, clock, old.server_url, code, old.device_name or "ALS ePRO", **pair_options)
    with store.settings.tx() as db:
        db.execute("UPDATE drafts SET device_id = ? WHERE device_id = ?", [new.device_id, old.device_id])
    if new.device_id != old.device_id:
        tokens.delete(old.device_id)
    AppLock(store, clock).clear_after_pairing()
    return new
