"""Framed messages over a Unix stream socket, with file descriptors passed alongside.

A frame is a 4-byte length, a 1-byte count of file descriptors, then a pickle. The
descriptors travel with the frame's first bytes (``SCM_RIGHTS``) and are handed out with the
message they came with. Both ends are processes of the same user and the same install, so
pickle is the format; nothing from outside ever reaches these sockets.
"""

from __future__ import annotations

import array
import os
import pickle
import socket
import struct
import threading
from collections import deque
from typing import Any

HEADER = struct.Struct("!IB")
MAX_FDS = 8
READ_SIZE = 256 * 1024


class Channel:
    """One end of a socket pair: ``send`` from any thread; ``recv`` (blocking) or
    ``feed`` + ``messages`` (for a select loop) from one reader thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self._fds: deque[int] = deque()
        self._ready: deque[tuple[Any, list[int]]] = deque()
        self._send_lock = threading.Lock()
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: Any, fds: list[int] | tuple[int, ...] = ()) -> None:
        """Send one message (and duplicates of ``fds``); raises OSError if the peer is gone."""
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        frame = memoryview(HEADER.pack(len(payload), len(fds)) + payload)
        with self._send_lock:
            sent = 0
            if fds:
                sent = self.sock.sendmsg([frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                    array.array("i", fds))])
            if sent < len(frame):
                self.sock.sendall(frame[sent:])

    def feed(self) -> bool:
        """Read what the socket has (one read); False at end of file."""
        data, ancillary, _flags, _addr = self.sock.recvmsg(
            READ_SIZE, socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize))
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(raw[:len(raw) - (len(raw) % fds.itemsize)])
                self._fds.extend(fds)
        if not data:
            self.closed = True
            return False
        self._buffer += data
        self._parse()
        return True

    def _parse(self) -> None:
        while len(self._buffer) >= HEADER.size:
            length, count = HEADER.unpack_from(self._buffer)
            end = HEADER.size + length
            if len(self._buffer) < end:
                return
            message = pickle.loads(self._buffer[HEADER.size:end])
            del self._buffer[:end]
            fds = [self._fds.popleft() for _ in range(min(count, len(self._fds)))]
            self._ready.append((message, fds))

    def messages(self) -> list[tuple[Any, list[int]]]:
        """The complete messages read so far, oldest first."""
        ready = list(self._ready)
        self._ready.clear()
        return ready

    def recv(self) -> tuple[Any, list[int]]:
        """Block until one message arrives; EOFError if the peer closed first."""
        while not self._ready:
            if not self.feed():
                raise EOFError("the other end closed the channel")
        return self._ready.popleft()

    def close(self) -> None:
        self.closed = True
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        try:
            self.sock.close()
        except OSError:
            pass


__all__ = ["Channel"]
