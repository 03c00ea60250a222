"""Real desktop clients for the evidence suites: a local store, the sync engine, HTTP to a server.

A :class:`Device` is what one installed client is: its own data folder (SQLite outbox), its token
(keyring, or the 0600 file without one), a wall clock that may be days off, and the real
``SyncEngine`` over ``HttpTransport``. Entries are submitted through ``Outbox.submit`` (the same
transaction the Submit button runs: gap-free ``device_seq``, validated, all or nothing).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests
import requests.adapters
import requests.structures

from desktop.clock import utc_iso
from desktop.store import Store
from desktop.sync import HttpTransport, SyncEngine
from desktop.sync.credentials import TokenStore
from desktop.sync.pairing import pair_device
from server.db import open_db
from server.store.audit import Actor
from server.migrations import migrate
from server.store.pairing import issue_pairing_code, redeem_pairing_code
from server.store.participants import enroll
from server.store.sites import add_site
from tests.support.live_server import LiveServer
from tests.support.records import make_alsfrs, make_dose, make_nasal

BEIJING = ZoneInfo("Asia/Shanghai")


class SkewedClock:
    """The device's wall clock: real time plus a fixed error (days off, either way)."""

    def __init__(self, offset: timedelta = timedelta(0), tz=BEIJING) -> None:
        self.offset, self.tz = offset, tz

    def now(self) -> datetime:
        return datetime.now(self.tz) + self.offset


class Device:
    def __init__(self, root: Path, name: str, server_url: str, code: str, *,
                 clock: SkewedClock | None = None, seed: int = 0,
                 timeout: tuple[float, float] = (5.0, 30.0),
                 session: requests.Session | None = None) -> None:
        self.dir = Path(root) / name
        self.name, self.clock, self.timeout, self.session = name, clock or SkewedClock(), timeout, session
        self.rng = random.Random(seed)
        self.store = Store(self.dir)
        self.tokens = TokenStore(self.dir, service=f"als-epro-evidence-{name}")
        self.pairing = pair_device(self.store, self.tokens, self.clock, server_url, code, name,
                                   transport_factory=lambda url: HttpTransport(url, session=session))
        self.engine = self._engine()

    def _engine(self) -> SyncEngine:
        token = self.tokens.load(self.pairing.device_id)
        transport = HttpTransport(self.pairing.server_url, token, timeout=self.timeout, session=self.session)
        return SyncEngine(self.store, transport, self.clock, rng=self.rng.random)

    @property
    def device_id(self) -> str:
        return self.pairing.device_id

    @property
    def participant(self) -> str:
        return self.pairing.participant

    # --- entries ----------------------------------------------------------------------------------
    def envelope(self, kind: str | None = None, **over: Any) -> dict[str, Any]:
        """A valid envelope as this device would build it now (its own clock, its participant)."""
        kind = kind or self.rng.choice(("nasal_symptoms", "alsfrs_r", "dose_confirmation"))
        entered = self.clock.now().replace(microsecond=0)
        offset = self.store.settings.get("clock_offset_s")
        common = {"entered_at": entered, "clock_offset_s": offset, "device_seq": 0, **over}
        if kind == "nasal_symptoms":
            return make_nasal(self.participant, **common)
        if kind == "alsfrs_r":
            return make_alsfrs(self.participant, score=self.rng.randint(0, 4), **common)
        return make_dose(self.participant, dose_number=self.rng.randint(1, 3), **common)

    def submit(self, envelope: dict[str, Any] | None = None):
        env = envelope if envelope is not None else self.envelope()
        return self.store.outbox.submit(env, None, utc_iso(self.clock.now()))

    def create(self, n: int) -> list[str]:
        return [self.submit().id for _ in range(n)]

    def created(self) -> dict[str, str]:
        """Every entry this device ever saved: id → sha256."""
        return {e.id: e.sha256 for e in self.store.outbox.entries()}

    def states(self) -> dict[str, str]:
        return {e.id: e.state for e in self.store.outbox.entries()}

    def waiting(self) -> int:
        return len(self.store.outbox.waiting(self.device_id))

    # --- sync -------------------------------------------------------------------------------------
    def sync_until_settled(self, deadline: float, pause_s: float = 0.02) -> list[str]:
        """Run the engine until nothing waits (the automatic retries, without their long backoff).

        Returns the outcomes of every run; raises ``TimeoutError`` past ``deadline`` (monotonic).
        """
        outcomes = []
        while True:
            result = self.engine.run()
            outcomes.append(result.outcome)
            if result.outcome in ("revoked", "token_invalid"):
                return outcomes
            if result.ok and result.waiting == 0:
                return outcomes
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: still {result.waiting} waiting after {outcomes[-5:]}")
            time.sleep(pause_s)   # a client's retry pause, not a wait for another thread

    def restart(self) -> None:
        """Quit and start the client again: same folder, new connection, new engine."""
        self.store.close()
        self.store = Store(self.dir)
        self.pairing = self.store.settings.pairing()
        self.engine = self._engine()

    def close(self) -> None:
        self.store.close()


# --- an in-process server behind requests, with faults -------------------------------------------

class WsgiAdapter(requests.adapters.BaseAdapter):
    """``requests`` → a Flask app in this process (no sockets), so the real ``HttpTransport`` runs.

    ``faults`` is consumed one per ``POST /sync/records``: ``"down"`` (network error before anything
    was sent), ``"lost"`` (the server stored, the answer never came), ``"5xx"`` (a 503 from in front
    of the server, nothing processed), ``"5xx_after"`` (processed, then a 502 from in front of it),
    ``"dup"`` (delivered twice; the client gets the second answer), ``"garbled"`` (processed, and
    every receipt hash in the answer altered on the way back), ``None`` (no fault).
    """

    FAULTS = (None, "down", "lost", "5xx", "5xx_after", "dup", "garbled")

    def __init__(self, app) -> None:
        super().__init__()
        self.client = app.test_client()
        self.faults: list[str | None] = []
        self.delivered = 0
        self.garbled_ids: set[str] = set()

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        parts = urlsplit(request.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        fault = None
        if request.method == "POST" and parts.path.endswith("/sync/records") and self.faults:
            fault = self.faults.pop(0)
        if fault == "down":
            raise requests.exceptions.ConnectionError("connection refused (injected)")
        if fault == "5xx":
            return self._response(request, 503, b"<html>Service Unavailable</html>", "text/html")
        body = request.body.encode("utf-8") if isinstance(request.body, str) else request.body
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}

        def deliver():
            self.delivered += 1
            return self.client.open(path, method=request.method, data=body, headers=headers)

        answer = deliver()
        if fault == "dup":
            answer = deliver()
        if fault == "lost":
            raise requests.exceptions.ConnectionError("connection reset after the request was sent (injected)")
        if fault == "5xx_after":
            return self._response(request, 502, b"<html>Bad Gateway</html>", "text/html")
        data = answer.get_data()
        if fault == "garbled" and answer.status_code == 200:
            doc = json.loads(data)
            for res in doc["results"]:
                if res.get("receipt"):
                    res["receipt"]["sha256"] = "0" * 64
                    self.garbled_ids.add(res["id"])
            data = json.dumps(doc).encode("utf-8")
        return self._response(request, answer.status_code, data, answer.content_type)

    @staticmethod
    def _response(request, status: int, data: bytes, content_type: str) -> requests.Response:
        resp = requests.Response()
        resp.status_code, resp._content, resp.url, resp.request = status, data, request.url, request
        resp.headers = requests.structures.CaseInsensitiveDict({"Content-Type": content_type})
        resp.encoding = "utf-8"
        return resp

    def close(self) -> None:
        pass


def wsgi_session(app, base_url: str = "http://127.0.0.1:9") -> tuple[requests.Session, WsgiAdapter]:
    session = requests.Session()
    adapter = WsgiAdapter(app)
    session.mount(base_url, adapter)
    return session, adapter


# --- setting up the server's side quickly -----------------------------------------------------------

@contextmanager
def live_server(tmp_dir: Path, subjects: tuple[str, ...], **kw: Any) -> Iterator[LiveServer]:
    """A :class:`LiveServer` whose participants beyond the first are enrolled in-process (the same
    store function the CLI calls), which saves a CLI start per participant."""
    srv = LiveServer(tmp_dir, subjects=subjects[:1], **kw)
    try:
        srv.prepare()
        db = open_db(srv.db_path)
        try:
            for subject in subjects[1:]:
                enroll(db, subject, srv.site, srv.onset, srv.first_dose, tz=srv.tz, actor=Actor.cli())
        finally:
            db.close()
        srv.subjects = tuple(subjects)
        srv.start()
        yield srv
    finally:
        srv.stop()


def new_server_db(path: Path, subjects: tuple[str, ...] = ("S-001",), *, site: str = "BJ01",
                  onset: str = "2023-05", first_dose: str = "2025-03-01"):
    """A migrated server database file with one site and these participants (no staff, so no
    argon2 hashing); the open :class:`sqlite_utils.Database`."""
    db = open_db(path)
    migrate(db)
    add_site(db, site, "Xuanwu Hospital study site", actor=Actor.cli())
    for subject in subjects:
        enroll(db, subject, site, onset, first_dose, actor=Actor.cli())
    return db


def pair_in_process(db, subject: str = "S-001", role: str = "participant") -> dict[str, Any]:
    """A device row for ``subject``, paired through the store functions the pair endpoint calls."""
    code = issue_pairing_code(db, subject, role, actor=Actor.cli())["code"]
    return redeem_pairing_code(db, code, "in-process", client_addr="127.0.0.1").device


def issue_codes(srv: LiveServer, wanted: list[tuple[str, str]]) -> list[str]:
    """One pairing code per ``(subject, role)``, issued as ``als-epro-server pairing-code`` does."""
    db = open_db(srv.db_path)
    try:
        return [issue_pairing_code(db, subject, role, actor=Actor.cli())["code"] for subject, role in wanted]
    finally:
        db.close()


# --- reading the server's database directly (read-only) ---------------------------------------------

def server_rows(db_path: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def server_records(db_path: Path) -> dict[str, str]:
    """id → sha256 of every stored record; raises if an id were stored twice."""
    rows = server_rows(db_path, "SELECT id, sha256 FROM records")
    out = {r["id"]: r["sha256"] for r in rows}
    assert len(out) == len(rows), "an id is stored twice"
    return out


def server_quarantine(db_path: Path) -> dict[str, str]:
    rows = server_rows(db_path, "SELECT record_id, sha256 FROM quarantine WHERE record_id IS NOT NULL")
    return {r["record_id"]: r["sha256"] for r in rows}


def check_agreement(db_path: Path, devices: list[Device]) -> dict[str, Any]:
    """The end state every fault suite asserts: the server holds exactly what clients created.

    - every created entry is on the server with the same sha256, or was refused (quarantine) and sits
      in its client's "needs attention" with that status;
    - no record twice, one version 1 and one ``record.accept`` audit row per record;
    - nothing waits in any outbox; every received entry's receipt hash is its own hash.
    """
    stored, refused = server_records(db_path), server_quarantine(db_path)
    created: dict[str, str] = {}
    receipts: dict[str, tuple[int, str]] = {}
    for dev in devices:
        mine = dev.created()
        assert not set(mine) & set(created), "two devices made the same id"
        created.update(mine)
        assert dev.waiting() == 0, f"{dev.name} still has entries waiting"
        for entry in dev.store.outbox.entries():
            if entry.state == "received":
                assert entry.receipt and entry.receipt["sha256"] == entry.sha256 == stored[entry.id]
                receipts[entry.id] = (entry.receipt["server_seq"], entry.receipt["received_at"])
            else:
                assert entry.state == "needs_attention" and entry.id in refused, (entry.id, entry.state)
                assert entry.server_status == "rejected"
    assert set(stored) | set(refused) == set(created), "loss: created entries missing on the server"
    assert not set(stored) & set(refused)
    assert {i: created[i] for i in stored} == stored, "a stored record differs from what was created"
    originals = server_rows(db_path, "SELECT id, server_seq, received_at FROM records")
    assert receipts == {r["id"]: (r["server_seq"], r["received_at"]) for r in originals}, \
        "a client holds a receipt other than the original one"
    versions = server_rows(db_path, "SELECT record_id, COUNT(*) AS n FROM record_versions GROUP BY record_id")
    assert {r["record_id"]: r["n"] for r in versions} == {i: 1 for i in stored}
    accepts = server_rows(db_path, "SELECT entity_id, COUNT(*) AS n FROM audit WHERE action = 'record.accept'"
                                   " GROUP BY entity_id")
    assert {r["entity_id"]: r["n"] for r in accepts} == {i: 1 for i in stored}, "a record accepted twice"
    seqs = server_rows(db_path, "SELECT device_id, device_seq, COUNT(*) AS n FROM records"
                                " GROUP BY device_id, device_seq HAVING n > 1")
    assert seqs == []
    return {"stored": len(stored), "refused": len(refused), "created": len(created)}
