"""A loopback SMTP server that misbehaves on purpose, one fault mode at a time.

Modes (what the server does with each message):
- ok: accepts it (250).
- accept_after_timeout: keeps it, then answers 250 only after `delay` seconds (past the client's timeout).
- drop_after_data: keeps it, then closes the connection without answering.
- 4xx: answers 451 after the message (not kept); `transient` limits how many times (then ok).
- 5xx: answers 554 after the message (not kept).
- hang: accepts the TCP connection and never says anything.
- greeting_421: answers the connection with 421 (service not available) and closes it.
- drop_mid_data: reads the first lines of the message, then closes the connection (the message is not kept).
- rcpt_550: refuses every recipient for good.
`go_down()` stops listening (connections are refused) and `come_back()` listens again on the same port.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

MODES = ("ok", "accept_after_timeout", "drop_after_data", "4xx", "5xx", "hang", "greeting_421", "drop_mid_data", "rcpt_550")


@dataclass
class FaultySmtp:
    mode: str = "ok"
    delay: float = 1.0
    transient: int | None = None  # 4xx: how many messages are refused before the server accepts (None: all)
    slow: float = 0.0  # ok: seconds to think before the 250 (within the client's timeout), so senders overlap
    kept: list[EmailMessage] = field(default_factory=list)
    data_commands: int = 0
    connections: int = 0
    _listener: socket.socket | None = None
    _port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._port
        return f"smtp://127.0.0.1:{self._port}"

    def start(self) -> FaultySmtp:
        self._listener = socket.create_server(("127.0.0.1", self._port))
        self._port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: close alone leaves it accepting
            self._listener.close()

    def go_down(self) -> None:
        self.stop()

    def come_back(self) -> None:
        self.start()

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.kept]

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
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
            if self.mode == "greeting_421":
                conn.sendall(b"421 4.3.2 faulty.test service not available\r\n")
                return
            conn.sendall(b"220 faulty.test ESMTP\r\n")
            for raw in reader:
                verb = raw.strip().split(b" ")[0].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250 faulty.test\r\n")
                elif verb == b"RCPT" and self.mode == "rcpt_550":
                    conn.sendall(b"550 5.1.1 no such user\r\n")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    conn.sendall(b"250 OK\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    if self.mode == "drop_mid_data":
                        self._drop_mid_data(conn, reader)
                        return
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

    def _drop_mid_data(self, conn: socket.socket, reader: object) -> None:
        """Read a few lines of the message, then reset the connection: the end of data never arrives."""
        with self._lock:
            self.data_commands += 1
        for _ in range(3):
            reader.readline()  # type: ignore[attr-defined]
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset

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
        elif self.slow:
            time.sleep(self.slow)
        try:
            conn.sendall(b"250 2.0.0 queued\r\n")
        except OSError:
            return False
        return True
