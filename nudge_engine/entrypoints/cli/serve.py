"""``nudge-engine serve``: the HTTP API under uvicorn, one worker per core by default (factory mode).

With more than one worker, each worker listens on a socket of its own, bound with ``SO_REUSEPORT``
to the same address, so the kernel spreads new connections evenly over the workers. On one shared
socket the first idle worker accepted most of them, and with keep-alive clients the split (and the
throughput) changed from run to run. Where ``SO_REUSEPORT`` is missing the workers share one socket.
Every listener has ``TCP_NODELAY`` set (see :func:`listening_socket`). ``--port 0`` needs one worker.

Prometheus metrics are kept in a fresh multiprocess directory so that every scrape sees all workers.
Uvicorn's access log is off: it would print raw paths, which hold the patient app's ids; the API
logs one line per request with the route template instead. HTTP is parsed and written by httptools
(llhttp, in C) rather than h11 (pure Python): in 20-second runs of
``benchmarks/bench_api.py`` on SQLite, 24% more requests per second on the bare endpoint and 16% on next-nudge.
Each response leaves in one socket write, headers and body together (:mod:`.http_writes`).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any, cast

import typer

FACTORY = "nudge_engine.entrypoints.api:create_app_from_env"

logger = logging.getLogger("uvicorn.error")


def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port (0, any free port, needs --workers 1)."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Worker processes (default: one per core)."),
) -> None:
    """Serve the HTTP API (and, when installed, the clinician pages)."""
    import uvicorn

    from nudge_engine.entrypoints.cli.http_writes import CoalescingHttpToolsProtocol

    count = workers or os.cpu_count() or 1
    if count > 1 and port == 0:
        raise typer.BadParameter("several workers need a fixed port (or use --workers 1)", param_hint="--port")
    if count > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="nudge-metrics-")
    options: dict[str, Any] = {
        "factory": True, "host": host, "port": port, "workers": count, "access_log": False,
        "server_header": False, "proxy_headers": False, "log_level": "warning", "http": CoalescingHttpToolsProtocol,
    }
    if count == 1:
        uvicorn.run(FACTORY, **options)  # exits non-zero when start-up fails
        return
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(FACTORY, **options)
    Multiprocess(config, sockets=worker_sockets(config)).run()


def worker_sockets(config: Any) -> list[socket.socket]:
    """What the supervisor hands every worker it starts: a :class:`OwnListener`, or the shared socket.

    Before any worker starts, the address is bound once without ``SO_REUSEPORT``: that fails if
    anything listens there already (another ``serve`` included, which would otherwise join the
    group and take half the connections), and the process exits with the reason.
    """
    if not hasattr(socket, "SO_REUSEPORT") or config.uds is not None or config.fd is not None:
        return [listening_socket(config)]
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    bind(family, config.host, config.port, reuse_port=False).close()
    # typed as sockets by uvicorn, whose supervisor only passes them on to the workers it spawns
    return [cast(socket.socket, OwnListener(family, config.host, config.port))]


class OwnListener:
    """Stands in for a listening socket in the supervisor; each worker binds its own in its place.

    Uvicorn passes the supervisor's sockets to every worker it spawns (at start, on SIGHUP, when one
    dies, on SIGTTIN) by pickling them into the new process. This object pickles as a call to
    :func:`bind_reusable`, so each worker binds a fresh ``SO_REUSEPORT`` socket (uvicorn's server
    then listens on it) and the supervisor holds none. A worker's socket therefore dies with it,
    and the kernel sends no connection to a listener that nobody accepts on.
    """

    def __init__(self, family: socket.AddressFamily, host: str, port: int) -> None:
        self.family, self.host, self.port = family, host, port

    def __reduce__(self) -> tuple[Callable[..., socket.socket], tuple[socket.AddressFamily, str, int]]:
        return bind_reusable, (self.family, self.host, self.port)


def bind_reusable(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    """A worker's own socket on the shared address (run in the worker, as it unpickles its arguments)."""
    return bind(family, host, port, reuse_port=True)


def bind(family: socket.AddressFamily, host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, not yet listening, with ``TCP_NODELAY`` set.

    If the address is taken, log why and exit with uvicorn's start-up failure code: a worker that
    exits so makes the supervisor stop instead of starting it again.
    """
    from uvicorn.config import STARTUP_FAILURE

    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no obstacle
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        logger.error("cannot listen on %s port %d: %s", host, port, exc.strerror or exc)
        sys.exit(STARTUP_FAILURE)
    return sock


def listening_socket(config: Any) -> socket.socket:
    """The workers' shared listening socket (where ``SO_REUSEPORT`` is missing), with Nagle's algorithm off.

    Uvicorn binds it with protocol 0, so asyncio does not set ``TCP_NODELAY`` on the connections it
    accepts; on Linux they inherit the listener's setting. Without it every response with a body
    waited for the client's delayed ACK, about 40 ms. :func:`bind` sets it for the same reason.
    """
    sock: socket.socket = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
