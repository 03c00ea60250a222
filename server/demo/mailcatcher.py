"""A local SMTP catcher (aiosmtpd on 127.0.0.1) for the demo and the tests: every message it accepts is
kept in memory and, with ``folder``, written there as ``<n>.eml``. Nothing is relayed anywhere.

``reject`` names recipient domains answered with ``550`` (a bad address); ``on_data`` runs before a
message is accepted (a test kills the sending server there: "between send and record").
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from pathlib import Path
from typing import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailCatcher:
    def __init__(self, port: int | None = None, *, folder: str | Path | None = None,
                 reject: tuple[str, ...] = (), on_data: Callable[[email.message.EmailMessage], None] | None = None):
        self.host, self.port = "127.0.0.1", port or free_port()
        self.folder = Path(folder) if folder else None
        self.reject, self.on_data = tuple(reject), on_data
        self.messages: list[email.message.EmailMessage] = []
        self.files: list[Path] = []
        self.arrived = threading.Condition()
        self._controller = None

    # aiosmtpd handler hooks
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.rsplit("@", 1)[-1].lower() in self.reject:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        if self.on_data is not None:
            self.on_data(msg)
        with self.arrived:
            self.messages.append(msg)
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self.folder / f"{len(self.messages):04d}.eml"
                path.write_bytes(envelope.original_content or envelope.content)
                self.files.append(path)
            self.arrived.notify_all()
        return "250 OK: queued"

    def start(self) -> "MailCatcher":
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Wait (bounded) until at least ``count`` messages arrived."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)

    def __enter__(self) -> "MailCatcher":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
