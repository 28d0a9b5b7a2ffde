"""``serve``: uvicorn in factory mode with several workers; metrics add up across workers; no raw paths logged.

Every listener turns Nagle's algorithm off; several workers need a fixed port. How the workers' sockets
spread connections is in ``test_serve_listeners``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.serving import free_port, running_serve, sqlite_serve_env

pytestmark = pytest.mark.slow


def test_two_workers_serve_the_api_and_every_scrape_counts_all_of_them(tmp_path: Path) -> None:
    env = sqlite_serve_env(tmp_path)
    log = tmp_path / "server.log"
    with (
        running_serve(env, port=free_port(), workers=2, log=log) as base,
        httpx.Client(base_url=base, timeout=10) as client,  # new connections spread over the workers
    ):
        for _ in range(20):
            client.get("/healthz", headers={"Connection": "close"})
        client.get("/v1/patients/app-canary-4417/next-nudge", headers={"Connection": "close"})
        metrics = client.get("/metrics").text
    count = r'nudge_http_request_duration_seconds_count\{method="GET",route="/healthz",status="200"\} (\S+)'
    healthz = re.search(count, metrics)
    assert healthz is not None and float(healthz.group(1)) == 20.0
    assert "app-canary-4417" not in log.read_text()
    assert "app-canary-4417" not in metrics


def _own_socket(port: int) -> socket.socket:
    from nudge_engine.entrypoints.cli.serve import bind_reusable

    return bind_reusable(socket.AF_INET, "127.0.0.1", port)


def _shared_socket(port: int) -> socket.socket:
    import uvicorn

    from nudge_engine.entrypoints.cli.serve import FACTORY, listening_socket

    return listening_socket(uvicorn.Config(FACTORY, factory=True, host="127.0.0.1", port=port, workers=2))


@pytest.mark.parametrize("make_listener", [_own_socket, _shared_socket], ids=["per-worker", "shared"])
def test_listening_sockets_hand_out_connections_with_nagle_off(make_listener: Callable[[int], socket.socket]) -> None:
    listener = make_listener(free_port())
    listener.listen(1)  # each worker's server does this with the socket it is handed
    try:
        with socket.create_connection(listener.getsockname()) as _client:
            accepted, _ = listener.accept()
            with accepted:
                # a response with a body must not wait for the client's delayed ACK
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.close()


def test_several_workers_refuse_port_zero_which_would_give_each_its_own_port() -> None:
    import typer

    from nudge_engine.entrypoints.cli.serve import serve_cmd

    with pytest.raises(typer.BadParameter, match="fixed port"):
        serve_cmd(host="127.0.0.1", port=0, workers=2)
