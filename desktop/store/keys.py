"""The database key in the OS keyring, and the one site setting that may allow a plain store.

:func:`open_store` is what the program calls (``desktop.app``):

- a working OS keyring (Windows Credential Locker, macOS Keychain, Secret Service): a random 256-bit
  key is made once, kept there under ``als-epro`` / ``db-key@<data folder>``, and the store is
  SQLCipher-encrypted (an old plain file is encrypted in place on that start);
- no keyring, or only one that keeps secrets in plain files (``keyring.backends.fail``,
  ``keyrings.alt``): :class:`KeyringUnavailable` — the program says so and stores nothing, **unless**
  the site's setting allows a plain store (below); the device token then goes to the 0600 file of
  :mod:`desktop.sync.credentials` as before, with its visible warning;
- the file is encrypted but the keyring has lost the key: :class:`KeyLost` (the site re-pairs;
  nothing is overwritten).

**The site's setting** is a file the site installs, ``als-epro-site.json``, with
``{"allow_plaintext_store": true}``. It is looked for next to the program (the bundle's folder, which
an ordinary user account cannot write on Windows/macOS installs) and in the data folder. Without the
file, or with ``false``, a computer without a keyring refuses. A file that is not valid JSON counts
as absent.
"""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import keyring
from keyring.errors import KeyringError

from desktop.store import Store
from desktop.store.cipher import KEY_BYTES, file_state
from desktop.store.db import DB_FILENAME, StoreEncrypted

SERVICE = "als-epro"
SITE_FILE = "als-epro-site.json"
#: keyring backends that are no protection (PS-05): the fail backend and keyrings.alt's files
_REFUSED_MODULES = ("keyring.backends.fail", "keyrings.alt")


class KeyringUnavailable(Exception):
    """No usable OS keyring, and the site's setting does not allow a plain store."""


class KeyLost(Exception):
    """The database is encrypted but its key is not in the keyring."""


@dataclass(frozen=True)
class SitePolicy:
    allow_plaintext_store: bool = False
    source: str | None = None

    @classmethod
    def load(cls, data_dir: Path | str, program_dir: Path | None = None) -> "SitePolicy":
        if program_dir is None:
            program_dir = Path(sys.executable).parent if getattr(sys, "frozen", False) else None
        for folder in (program_dir, Path(data_dir)):
            if folder is None:
                continue
            path = folder / SITE_FILE
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict):
                return cls(doc.get("allow_plaintext_store") is True, str(path))
        return cls()


def write_site_policy(folder: Path | str, allow_plaintext_store: bool) -> Path:
    """Install the site's setting file in ``folder`` (the demo, benchmarks and tests on machines
    without a keyring; a site installs it next to the program)."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    target = path / SITE_FILE
    target.write_text(json.dumps({"allow_plaintext_store": allow_plaintext_store}), encoding="utf-8")
    return target


def keyring_usable() -> bool:
    """Is there an OS keyring that is real protection (not the fail or a plaintext backend)?"""
    backend = keyring.get_keyring()
    backends = getattr(backend, "backends", None)
    chosen = list(backends) if backends is not None else [backend]
    return any(not type(b).__module__.startswith(_REFUSED_MODULES) for b in chosen)


def _user(data_dir: Path) -> str:
    return f"db-key@{Path(data_dir).resolve()}"


def database_key(data_dir: Path | str, *, create: bool = True, service: str = SERVICE) -> bytes | None:
    """The folder's key from the keyring (made and stored when ``create`` and there is none)."""
    if not keyring_usable():
        raise KeyringError("no usable keyring")
    user = _user(Path(data_dir))
    stored = keyring.get_password(service, user)
    if stored:
        return bytes.fromhex(stored)
    if not create:
        return None
    key = secrets.token_bytes(KEY_BYTES)
    keyring.set_password(service, user, key.hex())
    if keyring.get_password(service, user) != key.hex():    # never encrypt with a key we cannot read
        raise KeyringError("the keyring did not keep the database key")
    return key


def forget_key(data_dir: Path | str, service: str = SERVICE) -> None:
    try:
        keyring.delete_password(service, _user(Path(data_dir)))
    except KeyringError:
        pass


def open_store(data_dir: Path | str, policy: SitePolicy | None = None) -> Store:
    """The store for the program: encrypted with the keyring's key, or plain only if the site allows."""
    data_dir = Path(data_dir)
    policy = policy or SitePolicy.load(data_dir)
    state = file_state(data_dir / DB_FILENAME)
    try:
        key = database_key(data_dir, create=state != "encrypted")
    except KeyringError:
        if state == "encrypted":
            raise KeyLost(str(data_dir)) from None
        if not policy.allow_plaintext_store:
            raise KeyringUnavailable(str(data_dir)) from None
        return Store(data_dir)
    if key is None:
        raise KeyLost(str(data_dir))
    try:
        return Store(data_dir, key)
    except StoreEncrypted:
        raise KeyLost(str(data_dir)) from None
