"""A keyring backend for tests that must share one keyring between processes (crash tests, the
desktop program started as a subprocess): a JSON file named by ``ALS_EPRO_TEST_KEYRING``.

It stands in for the OS keyring, which this machine does not have (stack.md §6). Select it with
``PYTHON_KEYRING_BACKEND=tests.support.filekeyring.FileKeyring``; keyring's own detection never
chooses it (its priority raises unless that variable is set, i.e. in the child processes of a test).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import keyring

from jaraco.classes import properties
from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    @properties.classproperty
    def priority(cls):
        if not os.environ.get("ALS_EPRO_TEST_KEYRING"):
            raise RuntimeError("test-only backend")
        return 1

    @property
    def path(self) -> Path:
        return Path(os.environ["ALS_EPRO_TEST_KEYRING"])

    def _load(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _save(self, data: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.path)

    def set_password(self, service, username, password):
        data = self._load()
        data[f"{service}\n{username}"] = password
        self._save(data)

    def get_password(self, service, username):
        return self._load().get(f"{service}\n{username}")

    def delete_password(self, service, username):
        data = self._load()
        data.pop(f"{service}\n{username}", None)
        self._save(data)


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring for one test process."""

    @properties.classproperty
    def priority(cls):
        raise RuntimeError("test-only backend")

    def __init__(self):
        super().__init__()
        self.data = {}

    def set_password(self, service, username, password):
        self.data[(service, username)] = password

    def get_password(self, service, username):
        return self.data.get((service, username))

    def delete_password(self, service, username):
        self.data.pop((service, username), None)


@contextmanager
def installed(backend: KeyringBackend) -> Iterator[KeyringBackend]:
    """Use ``backend`` as the process's keyring inside the block, then the previous one again."""
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)
