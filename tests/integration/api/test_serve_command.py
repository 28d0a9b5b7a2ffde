"""``serve``: uvicorn in factory mode with several workers; metrics add up across workers; no raw paths logged."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import httpx
import pytest

from nudge_engine.adapters.database import make_engine
from nudge_engine.adapters.migrations import upgrade
from tests.support.serving import free_port, running_serve

pytestmark = pytest.mark.slow


def test_two_workers_serve_the_api_and_every_scrape_counts_all_of_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nudge.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    env = {**os.environ, "NUDGE_DATABASE_URL": url, "NUDGE_VAR_DIR": str(tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
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


def test_the_shared_listening_socket_hands_out_connections_with_nagle_off() -> None:
    import uvicorn

    from nudge_engine.entrypoints.cli.serve import FACTORY, listening_socket

    config = uvicorn.Config(FACTORY, factory=True, host="127.0.0.1", port=free_port(), workers=2)
    listener = listening_socket(config)
    listener.listen(1)  # each worker's server does this with the socket it is handed
    try:
        with socket.create_connection(listener.getsockname()) as _client:
            accepted, _ = listener.accept()
            with accepted:
                # a response with a body must not wait for the client's delayed ACK
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.close()
