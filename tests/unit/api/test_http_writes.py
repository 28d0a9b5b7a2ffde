"""A response's writes reach the socket as one: :class:`CoalescingTransport` and uvicorn's protocol using it."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from nudge_engine.entrypoints.cli.http_writes import CoalescingHttpToolsProtocol, CoalescingTransport


class RecordingTransport:
    """What a socket's transport was asked to do, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", b""))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", b""))

    def write_eof(self) -> None:
        self.calls.append(("write_eof", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555)}.get(name, default)


def _in_a_loop(body: Callable[[CoalescingTransport, RecordingTransport], Awaitable[None]]) -> RecordingTransport:
    recorded = RecordingTransport()

    async def main() -> None:
        await body(CoalescingTransport(recorded, asyncio.get_running_loop()), recorded)  # type: ignore[arg-type]

    asyncio.run(main())
    return recorded


def test_writes_made_in_one_loop_step_reach_the_transport_as_one_write_in_order() -> None:
    async def step(coalescing: CoalescingTransport, recorded: RecordingTransport) -> None:
        coalescing.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        coalescing.write(b"")  # nothing to send: no write
        coalescing.write(memoryview(b"{}"))
        assert recorded.calls == []  # held until the step ends
        assert coalescing.get_write_buffer_size() == 40 + 7
        await asyncio.sleep(0)
        coalescing.write(b"next")
        await asyncio.sleep(0)

    recorded = _in_a_loop(step)
    assert recorded.calls == [("write", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"), ("write", b"next")]


def test_closing_sends_what_is_held_first_and_aborting_drops_it() -> None:
    async def close(coalescing: CoalescingTransport, _recorded: RecordingTransport) -> None:
        coalescing.writelines([b"a", b"b"])
        coalescing.close()
        await asyncio.sleep(0)  # the step's flush finds nothing left

    async def abort(coalescing: CoalescingTransport, _recorded: RecordingTransport) -> None:
        coalescing.write(b"a")
        coalescing.abort()
        await asyncio.sleep(0)

    async def eof(coalescing: CoalescingTransport, _recorded: RecordingTransport) -> None:
        coalescing.write(b"a")
        coalescing.write_eof()
        await asyncio.sleep(0)

    assert _in_a_loop(close).calls == [("write", b"ab"), ("close", b"")]
    assert _in_a_loop(abort).calls == [("abort", b"")]
    assert _in_a_loop(eof).calls == [("write", b"a"), ("write_eof", b"")]


def test_nothing_is_written_to_a_transport_that_closed_meanwhile_and_the_rest_is_passed_through() -> None:
    async def step(coalescing: CoalescingTransport, recorded: RecordingTransport) -> None:
        coalescing.write(b"late")
        recorded.closing = True  # the peer went away within the step
        await asyncio.sleep(0)
        assert coalescing.get_extra_info("peername") == ("127.0.0.1", 5555)
        assert coalescing.is_closing()

    assert _in_a_loop(step).calls == []


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain response on ``/plain``, a body in three chunks on ``/stream``."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for chunk in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"ok":true}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _serve_and_ask(requests: bytes, expect_responses: int) -> tuple[bytes, list[bytes]]:
    """Run uvicorn with the coalescing protocol on a free port, send ``requests`` on one connection and read the
    answers; returns them and every write the protocol made to its socket's transport."""
    writes: list[bytes] = []

    class Recording(CoalescingHttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            real_write = transport.write

            def write(data: Any) -> None:
                writes.append(bytes(data))
                real_write(data)

            transport.write = write  # type: ignore[method-assign]
            super().connection_made(transport)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_app, http=Recording, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    answers: list[bytes] = []

    async def main() -> None:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        writer.write(requests)
        received = b""
        while received.count(b"HTTP/1.1 200") < expect_responses or not received.endswith((b"}", b"0\r\n\r\n")):
            received += await asyncio.wait_for(reader.read(65536), 10)
        answers.append(received)
        writer.close()
        server.should_exit = True
        await serving

    runner = threading.Thread(target=asyncio.run, args=(main(),))  # a loop of its own, whatever the test runner runs
    runner.start()
    runner.join(30)
    sock.close()
    assert answers, "the server did not answer"
    return answers[0], writes


def test_uvicorn_sends_a_plain_response_in_one_write_and_pipelined_requests_still_get_every_answer_in_order() -> None:
    one = b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n"
    answer, writes = _serve_and_ask(one, 1)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b'\r\n\r\n{"ok":true}')
    assert writes == [answer]  # status line, headers and body: one write

    pipelined = one + b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n" + one
    answer, writes = _serve_and_ask(pipelined, 3)
    assert answer.count(b'{"ok":true}') == 2
    streamed = answer.split(b'{"ok":true}')[1]
    assert b"transfer-encoding: chunked" in streamed and b"one " in streamed and b"three" in streamed
    assert b"".join(writes) == answer
    assert len(writes) >= 3  # a streamed body still leaves chunk by chunk, as the app yields
