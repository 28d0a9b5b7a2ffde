"""``nudge-engine serve``: the HTTP API under uvicorn, one worker per core by default (factory mode).

With more than one worker, the workers share one listening socket with ``TCP_NODELAY`` set, and
Prometheus metrics are kept in a fresh multiprocess directory so that
every scrape sees all workers. Uvicorn's access log is off: it would print raw paths, which hold the
patient app's ids; the API logs one line per request with the route template instead.
"""

from __future__ import annotations

import os
import socket
import tempfile
from typing import Any

import typer

FACTORY = "nudge_engine.entrypoints.api:create_app_from_env"


def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Worker processes (default: one per core)."),
) -> None:
    """Serve the HTTP API (and, when installed, the clinician pages)."""
    import uvicorn

    count = workers or os.cpu_count() or 1
    if count > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="nudge-metrics-")
    options: dict[str, Any] = {
        "factory": True, "host": host, "port": port, "workers": count, "access_log": False,
        "server_header": False, "proxy_headers": False, "log_level": "warning",
    }
    if count == 1:
        uvicorn.run(FACTORY, **options)  # exits non-zero when start-up fails
        return
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(FACTORY, **options)
    Multiprocess(config, sockets=[listening_socket(config)]).run()


def listening_socket(config: Any) -> socket.socket:
    """The workers' shared listening socket, with Nagle's algorithm off.

    Uvicorn binds it with protocol 0, so asyncio does not set ``TCP_NODELAY`` on the connections it
    accepts; on Linux they inherit the listener's setting. Without it every response with a body
    waited for the client's delayed ACK, about 40 ms.
    """
    sock: socket.socket = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
