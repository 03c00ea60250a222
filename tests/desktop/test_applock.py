"""The app lock's rules (PS-06): 4–8 digit PINs kept as argon2id, pauses that grow after every fifth
wrong PIN and survive a restart, never anything lost, the site's reset by re-pairing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from desktop.services.applock import (
    FIRST_PAUSE_S, MAX_PAUSE_S, TRIES_BEFORE_PAUSE, AppLock, BadPin, normalize_pin, reset_by_pairing,
)
from desktop.services.entries import EntryService
from desktop.store import Store
from desktop.sync.pairing import StillWaiting
from tests.desktop.helpers import fill_alsfrs, fill_nasal, pair
from tests.support.filekeyring import MemoryKeyring


def test_pins_have_four_to_eight_digits_from_any_keyboard():
    assert normalize_pin(" 1234 ") == "1234"
    assert normalize_pin("１２３４５") == "12345"            # full-width digits of a Chinese IME
    for bad in ("123", "123456789", "12a4", "", "12 34"):
        with pytest.raises(BadPin):
            normalize_pin(bad)


def test_the_pin_is_stored_only_as_argon2id(paired, clock):
    lock = AppLock(paired, clock)
    assert not lock.enabled
    lock.set_pin("4826", idle_minutes=10)
    assert lock.enabled and lock.idle_minutes == 10
    dump = "\n".join(paired.db.conn.iterdump())
    assert "4826" not in dump and "$argon2id$" in dump
    assert lock.try_pin("4826").ok


def test_wrong_pins_pause_for_longer_each_time_and_a_restart_does_not_reset_it(tmp_path, clock):
    store = Store(tmp_path / "d")
    pair(store)
    svc = EntryService(store, clock)
    draft = fill_nasal(svc)                                  # an unfinished form behind the lock
    lock = AppLock(store, clock)
    lock.set_pin("135790")
    pauses = []
    for round_ in range(4):
        for i in range(TRIES_BEFORE_PAUSE):
            a = lock.try_pin("000000")
            assert not a.ok
            if i < TRIES_BEFORE_PAUSE - 1:
                assert a.tries_left == TRIES_BEFORE_PAUSE - 1 - i and a.paused_s == 0
        pauses.append(a.paused_s)
        assert lock.try_pin("135790") == type(a)(False, 0, a.paused_s)   # even the right PIN waits
        store.close()                                           # restart: the pause stays
        store = Store(tmp_path / "d")
        lock = AppLock(store, clock)
        assert lock.paused_for() == a.paused_s
        clock.advance(seconds=a.paused_s)
        assert lock.paused_for() == 0
    assert pauses == [FIRST_PAUSE_S * 2 ** k for k in range(4)]
    assert lock.try_pin("135790").ok and lock.paused_for() == 0
    assert [d.id for d in EntryService(store, clock).open_drafts()] == [draft.id]   # nothing lost
    store.close()


def test_the_pause_never_exceeds_an_hour(paired, clock):
    lock = AppLock(paired, clock)
    lock.set_pin("2468")
    for _ in range(8):                                          # 30 s · 2**7 > 1 h
        for _ in range(TRIES_BEFORE_PAUSE):
            a = lock.try_pin("1111")
        clock.advance(seconds=a.paused_s)
    assert a.paused_s == MAX_PAUSE_S


class FakePairTransport:
    def __init__(self, url):
        self.url = url

    def pair(self, code, name):
        if code != "GOODCODE42":
            from desktop.sync.transport import RequestError
            raise RequestError("code wrong", 400, "pairing.code_invalid")
        return {"device_id": "dev-2", "token": "tok-2", "participant": "001-001", "role": "participant",
                "originator": "participant:001-001", "protocol": {}, "limits": {}}


def test_the_site_resets_a_forgotten_pin_by_pairing_again_and_nothing_is_lost(paired, clock):
    import keyring
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        from desktop.sync.credentials import TokenStore
        tokens = TokenStore(paired.data_dir)
        tokens.save("dev-1", "tok-1")
        svc = EntryService(paired, clock)
        draft = fill_alsfrs(svc)
        submitted = svc.submit(fill_nasal(svc), "en").entry
        lock = AppLock(paired, clock)
        lock.set_pin("9753")
        with pytest.raises(StillWaiting):                       # an entry not yet at the site: refused
            reset_by_pairing(paired, tokens, clock, "GOODCODE42", sync=lambda: None,
                             transport_factory=FakePairTransport)
        assert lock.enabled and paired.device_id == "dev-1"
        from desktop.store import Outcome
        paired.outbox.record([Outcome(submitted.id, "received", "accepted",
                                      {"server_seq": 1, "received_at": "x", "sha256": submitted.sha256})], "x")
        from desktop.sync.transport import RequestError
        with pytest.raises(RequestError):
            reset_by_pairing(paired, tokens, clock, "WRONG", transport_factory=FakePairTransport)
        assert lock.enabled
        new = reset_by_pairing(paired, tokens, clock, "GOODCODE42", transport_factory=FakePairTransport)
        assert new.device_id == "dev-2" and not lock.enabled
        assert [d.id for d in EntryService(paired, clock).open_drafts()] == [draft.id]   # the draft moved
        assert tokens.load("dev-2") == "tok-2" and tokens.load("dev-1") is None
    finally:
        keyring.set_keyring(previous)
