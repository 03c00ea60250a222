"""Where the device token lives: the OS keyring, or — only if there is none — a file only the user
can read, with a visible warning (``TokenStore.fallback`` is then true)."""

from __future__ import annotations

import os
from pathlib import Path

import keyring
from keyring.errors import KeyringError

from desktop.store.db import secure_dir, secure_file

SERVICE = "als-epro"
FALLBACK_NAME = "device-token"


class TokenStore:
    def __init__(self, data_dir: Path | str, service: str = SERVICE) -> None:
        self.data_dir = Path(data_dir)
        self.service = service

    @property
    def fallback_path(self) -> Path:
        return self.data_dir / FALLBACK_NAME

    @property
    def fallback(self) -> bool:
        """True when the token is kept in the fallback file rather than the OS keyring."""
        return self.fallback_path.exists()

    def _user(self, device_id: str) -> str:
        # one data dir = one client; the dir keeps two clients on one machine apart
        return f"{device_id}@{self.data_dir.resolve()}"

    def save(self, device_id: str, token: str) -> str:
        """Store the token; returns "keyring" or "file"."""
        try:
            keyring.set_password(self.service, self._user(device_id), token)
        except KeyringError:
            secure_dir(self.data_dir)
            path = secure_file(self.fallback_path)
            tmp = secure_file(path.with_suffix(".tmp"))
            tmp.write_text(token, encoding="utf-8")
            os.replace(tmp, path)
            return "file"
        if self.fallback_path.exists():
            self.fallback_path.unlink()
        return "keyring"

    def load(self, device_id: str) -> str | None:
        if self.fallback_path.exists():
            return self.fallback_path.read_text(encoding="utf-8").strip() or None
        try:
            return keyring.get_password(self.service, self._user(device_id))
        except KeyringError:
            return None

    def delete(self, device_id: str) -> None:
        if self.fallback_path.exists():
            self.fallback_path.unlink()
        try:
            keyring.delete_password(self.service, self._user(device_id))
        except KeyringError:
            pass
