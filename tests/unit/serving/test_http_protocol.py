"""One socket write per answer: uvicorn's real httptools protocol on a recording transport,
and the predictor's REST server wired to use it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from modeldeploy.serving.http_protocol import OneWriteHttpToolsProtocol, TurnBufferedTransport

REQUEST = (
    b"POST /v1/models/m:predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    b"content-length: 2\r\n\r\n{}"
)


class RecordingTransport(asyncio.Transport):
    """What reaches the socket: one entry per ``write`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.buffered = 0

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _answer(app: Any, protocol_class: type[HttpToolsProtocol]) -> RecordingTransport:
    config = uvicorn.Config(app, log_config=None)
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    for _ in range(20):  # let the ASGI task answer and the held write go out
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport


async def _json_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    body = b'{"predictions":[1]}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def test_uvicorn_writes_head_and_body_separately() -> None:
    """The baseline this module exists for: stock uvicorn makes two writes per answer."""
    transport = asyncio.run(_answer(_json_app, HttpToolsProtocol))
    assert len(transport.writes) == 2
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[1] == b'{"predictions":[1]}'


def test_one_write_protocol_sends_the_same_bytes_in_one_write() -> None:
    stock = asyncio.run(_answer(_json_app, HttpToolsProtocol))
    transport = asyncio.run(_answer(_json_app, OneWriteHttpToolsProtocol))
    assert len(transport.writes) == 1
    # Same bytes apart from the date header, which moves with the clock.
    strip = lambda raw: b"\r\n".join(  # noqa: E731
        line for line in raw.split(b"\r\n") if not line.startswith(b"date:")
    )
    assert strip(transport.writes[0]) == strip(b"".join(stock.writes))
    assert transport.writes[0].endswith(b'\r\n\r\n{"predictions":[1]}')


def test_a_completed_answer_is_written_at_once_not_a_turn_later() -> None:
    """When an answer completes, its bytes go to the socket before the app's next line
    runs: the client can send its next request while the loop answers the others of the
    same batch (docs/serving.md, "One write per answer, at once")."""
    seen: list[int] = []
    transport_of: list[RecordingTransport] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _json_app(scope, receive, send)
        seen.append(len(transport_of[0].writes))

    async def answer() -> RecordingTransport:
        config = uvicorn.Config(app, log_config=None)
        config.load()
        protocol = OneWriteHttpToolsProtocol(
            config=config, server_state=ServerState(), app_state={}
        )
        transport = RecordingTransport()
        transport_of.append(transport)
        protocol.connection_made(transport)
        protocol.data_received(REQUEST)
        for _ in range(20):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport

    transport = asyncio.run(answer())
    assert seen == [1]
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b'{"predictions":[1]}')


def test_streamed_body_chunks_sent_in_separate_turns_stay_separate_and_in_order() -> None:
    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"two", "more_body": False})

    transport = asyncio.run(_answer(streaming, OneWriteHttpToolsProtocol))
    joined = b"".join(transport.writes)
    assert joined.index(b"one") < joined.index(b"two")
    assert joined.endswith(b"0\r\n\r\n")  # chunked: uvicorn's terminator still goes out
    assert len(transport.writes) == 2  # head + first chunk, then the rest


def test_turn_buffered_transport_holds_until_the_next_turn() -> None:
    async def scenario() -> list[list[bytes]]:
        raw = RecordingTransport()
        wrapped = TurnBufferedTransport(raw, asyncio.get_running_loop())
        wrapped.write(b"a")
        wrapped.write(memoryview(b"b"))
        wrapped.write(b"")
        seen = [list(raw.writes)]
        await asyncio.sleep(0)
        seen.append(list(raw.writes))
        return seen

    before, after = asyncio.run(scenario())
    assert before == []
    assert after == [b"ab"]


def test_close_and_write_eof_flush_first_abort_drops() -> None:
    async def scenario() -> tuple[RecordingTransport, RecordingTransport, RecordingTransport]:
        loop = asyncio.get_running_loop()
        closing, eof, aborting = RecordingTransport(), RecordingTransport(), RecordingTransport()
        for raw, end in ((closing, "close"), (eof, "write_eof"), (aborting, "abort")):
            wrapped = TurnBufferedTransport(raw, loop)
            wrapped.write(b"held")
            getattr(wrapped, end)()
        await asyncio.sleep(0)  # the scheduled flushes find nothing more to write
        return closing, eof, aborting

    closing, eof, aborting = asyncio.run(scenario())
    assert closing.writes == [b"held"] and closing.closed
    assert eof.writes == [b"held", b"<eof>"]
    assert aborting.writes == [] and aborting.aborted


def test_held_bytes_count_in_the_write_buffer_and_other_calls_pass_through() -> None:
    async def scenario() -> tuple[int, Any]:
        raw = RecordingTransport()
        raw.buffered = 10
        wrapped = TurnBufferedTransport(raw, asyncio.get_running_loop())
        wrapped.write(b"12345")
        return wrapped.get_write_buffer_size(), wrapped.get_extra_info("peername")

    size, peer = asyncio.run(scenario())
    assert size == 15
    assert peer == ("127.0.0.1", 5000)


def test_nothing_is_written_to_a_transport_that_is_closing() -> None:
    async def scenario() -> RecordingTransport:
        raw = RecordingTransport()
        wrapped = TurnBufferedTransport(raw, asyncio.get_running_loop())
        wrapped.write(b"late")
        raw.closed = True  # the peer went away before the flush
        await asyncio.sleep(0)
        return raw

    assert asyncio.run(scenario()).writes == []


def test_predictor_rest_server_uses_the_one_write_protocol() -> None:
    from kserve.protocol.rest import server as rest

    from modeldeploy.serving.server import serve_app

    original = rest.RESTServer.__init__
    try:
        serve_app(_json_app)
        server = rest.RESTServer("ignored:app", None, None, http_port=0)  # type: ignore[arg-type]
    finally:
        rest.RESTServer.__init__ = original  # type: ignore[method-assign]
    assert server.config.http is OneWriteHttpToolsProtocol
    assert server.config.app is _json_app


@pytest.fixture
def access_logger() -> Any:
    logger = logging.getLogger("uvicorn.access")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield logger
    logger.level, logger.handlers, logger.propagate = saved[0], saved[1], saved[2]


def test_quiet_access_log_stops_uvicorn_formatting_access_lines(access_logger: Any) -> None:
    from modeldeploy.serving.server import quiet_access_log

    logging.getLogger().addHandler(handler := logging.NullHandler())
    loop = asyncio.new_event_loop()
    config = uvicorn.Config(_json_app, log_config=None)

    def protocol() -> HttpToolsProtocol:
        return HttpToolsProtocol(config, ServerState(), app_state={}, _loop=loop)

    try:
        access_logger.setLevel(logging.WARNING)  # what a level alone does: lines dropped ...
        assert protocol().access_log
        quiet_access_log()  # ... and what this does: nothing formatted either
        assert not protocol().access_log
    finally:
        logging.getLogger().removeHandler(handler)
        loop.close()
