"""uvicorn's httptools protocol, with each answer's head and body in one socket write.

uvicorn writes an answer's status line and headers when the app sends
``http.response.start`` and the body when it sends ``http.response.body``: two ``send``
system calls, and, with ``TCP_NODELAY`` (asyncio's default), two TCP segments the client
wakes up for. Profiled in the predictor at concurrency 16 on 2 cores, the event loop spent
about a third of its time per request in uvicorn's ``send``, most of it in those two system
calls, and at concurrency 16 the loop's time per request is time the inference thread
waits for the next batch (docs/serving.md, "Speed").

:class:`OneWriteHttpToolsProtocol` hands uvicorn a transport that holds what is written
during one turn of the event loop and writes it as one piece at the start of the next
turn (``loop.call_soon``). The head and body of an answer are sent in the same turn (the
lean v1 route sends both without awaiting anything in between), so they leave as one
write. Nothing is reordered and nothing waits on a timer: a close or ``write_eof`` first
writes what is held, an abort drops it (as an abort drops the transport's own buffer),
and the write-buffer size a flow-control check reads includes it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class TurnBufferedTransport:
    """A transport whose writes within one loop turn reach the socket as one write.

    Anything not defined here is the wrapped transport's (``get_extra_info``,
    ``is_closing``, ``pause_reading``, ...).
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Write what is held (a no-op when nothing is, or the transport is closing)."""
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`TurnBufferedTransport` (module docstring).

    A completed answer is written at once (``on_response_complete``), not at the next
    turn: after a forward pass the event loop answers all of the batch's requests in one
    turn, and holding every answer until that turn ended kept each client waiting for
    the last one to be built (about 2 ms at concurrency 16), when it could already be
    sending its next request. Measured in the predictor at concurrency 16 (torch bf16 on
    AMX), the gap between two passes went from 2.76-2.93 ms to 2.38-2.45.

    Flow control (``FlowControl``) keeps the real transport: it pauses and resumes
    reading, which nothing held affects.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = TurnBufferedTransport(transport, self.loop)  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]  # head and body: one write
        super().on_response_complete()
