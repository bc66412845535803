"""A loopback SMTP server that misbehaves on purpose, one fault mode at a time.

Modes (what the server does with each message):
- ok: accepts it (250).
- accept_after_timeout: keeps it, then answers 250 only after `delay` seconds (past the client's timeout).
- drop_after_data: keeps it, then closes the connection without answering.
- 4xx: answers 451 after the message (not kept); `transient` limits how many times (then ok).
- 5xx: answers 554 after the message (not kept).
- hang: accepts the TCP connection and never says anything.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

MODES = ("ok", "accept_after_timeout", "drop_after_data", "4xx", "5xx", "hang")


@dataclass
class FaultySmtp:
    mode: str = "ok"
    delay: float = 1.0
    transient: int | None = None  # 4xx: how many messages are refused before the server accepts (None: all)
    kept: list[EmailMessage] = field(default_factory=list)
    data_commands: int = 0
    _listener: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._listener is not None
        return f"smtp://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> FaultySmtp:
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.kept]

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            if self.mode == "hang":
                conn.settimeout(30)
                try:
                    while conn.recv(1024):  # wait for the client to give up
                        pass
                except OSError:
                    pass
                return
            conn.sendall(b"220 faulty.test ESMTP\r\n")
            for raw in reader:
                verb = raw.strip().split(b" ")[0].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250 faulty.test\r\n")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    conn.sendall(b"250 OK\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    if not self._after_data(conn, self._read_message(reader)):
                        return
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"502 unknown command\r\n")

    @staticmethod
    def _read_message(reader: object) -> bytes:
        lines = []
        for line in reader:  # type: ignore[attr-defined]
            if line == b".\r\n":
                break
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)

    def _after_data(self, conn: socket.socket, payload: bytes) -> bool:
        """Answer one transmitted message; False when the connection is to be dropped."""
        with self._lock:
            self.data_commands += 1
            refuse = self.mode in ("4xx", "5xx") and (self.transient is None or self.transient > 0)
            if refuse and self.transient is not None:
                self.transient -= 1
            if not refuse:
                self.kept.append(message_from_bytes(payload, policy=default))
        if refuse:
            conn.sendall(b"451 4.3.0 try again later\r\n" if self.mode == "4xx" else b"554 5.6.0 message refused\r\n")
            return True
        if self.mode == "drop_after_data":
            return False
        if self.mode == "accept_after_timeout":
            time.sleep(self.delay)
        try:
            conn.sendall(b"250 2.0.0 queued\r\n")
        except OSError:
            return False
        return True
