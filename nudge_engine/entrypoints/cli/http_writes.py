"""One socket write per response: uvicorn's httptools protocol with the writes of an event-loop step joined.

Uvicorn writes a response's status line and headers when the app sends ``http.response.start`` and
the body when it sends ``http.response.body``: two ``send`` calls, and with ``TCP_NODELAY`` two
packets, for every response with a body. Each costs a system call here and a wake-up in the client.
:class:`CoalescingTransport` holds what is written during one step of the event loop and hands it to
the socket in one write at the end of the step (``call_soon``). An app sends both messages of a
plain response without yielding in between, so headers and body leave together. A streamed body
still leaves as it is produced: each chunk goes at the end of the step that wrote it.
aiohttp's server does the same for small responses.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Stands in for a connection's transport; writes made in one loop step reach the socket as one write.

    Everything but writing, closing and aborting goes to the transport unchanged. ``close`` sends what is
    held first (as the transport's own ``close`` sends its buffer); ``abort`` drops it, as the transport does.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for data in chunks:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self._held)) + self._transport.get_write_buffer_size()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    def _flush(self) -> None:
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol writing through a :class:`CoalescingTransport` (``uvicorn.Config(http=...)``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
