"""``serve`` with several workers: a listening socket per worker, so connections spread over all of them.

Who owns which socket is read from Linux's ``/proc`` (the API has no endpoint that names a worker).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from http.client import HTTPConnection
from pathlib import Path

import pytest

from tests.support.serving import free_port, serve_process, sqlite_serve_env, start_serve

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT") or not Path("/proc/net/tcp").exists(),
                       reason="per-worker sockets need SO_REUSEPORT; ownership is read from Linux /proc"),
]

LISTEN, ESTABLISHED = "0A", "01"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """A two-worker ``serve`` shared by the tests that only look at it: (port, supervisor pid)."""
    tmp_path = tmp_path_factory.mktemp("serve")
    port = free_port()
    with serve_process(sqlite_serve_env(tmp_path), port=port, workers=2, log=tmp_path / "server.log") as proc:
        yield port, proc.pid


def _tcp_table(port: int) -> list[tuple[str, int, int]]:
    """The IPv4 TCP sockets whose local port is ``port``: (state, remote port, inode) each."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            rows.append((fields[3], int(fields[2].rsplit(":", 1)[1], 16), int(fields[9])))
    return rows


def _tcp_sockets(port: int, state: str) -> set[int]:
    """Inodes of the IPv4 TCP sockets in ``state`` whose local port is ``port``."""
    return {inode for row_state, _, inode in _tcp_table(port) if row_state == state}


def _sockets_of(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` has open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed while we looked
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            after_name = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        if int(after_name[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _workers(port: int, supervisor: int, *, but: int | None = None) -> set[int]:
    """The supervisor's children that listen on ``port`` (not multiprocessing's resource tracker), once two do.

    ``/readyz`` answers as soon as one worker listens; the other may still be starting (or, with
    ``but``, replacing that worker).
    """
    deadline = time.monotonic() + 60
    while True:
        listening = _tcp_sockets(port, LISTEN)
        workers = {pid for pid in _children(supervisor) if _sockets_of(pid) & listening}
        if (len(workers) == 2 and but not in workers) or time.monotonic() > deadline:
            return workers
        time.sleep(0.1)


def test_each_worker_listens_on_a_socket_of_its_own_and_the_supervisor_on_none(server: tuple[int, int]) -> None:
    port, supervisor = server
    workers = _workers(port, supervisor)
    listening = _tcp_sockets(port, LISTEN)
    assert len(workers) == 2
    held = [_sockets_of(pid) & listening for pid in sorted(workers)]
    assert all(len(inodes) == 1 for inodes in held)
    assert held[0] != held[1]
    # a listener the supervisor kept open would queue connections nobody accepts once its worker died
    assert not _sockets_of(supervisor) & listening


def _accepted(port: int) -> dict[int, int]:
    """The server's side of the established connections to ``port``: socket inode by the client's port."""
    return {client_port: inode for state, client_port, inode in _tcp_table(port) if state == ESTABLISHED}


def _keep_alive_round(port: int, workers: set[int], clients: int) -> Counter[int]:
    """Open ``clients`` connections at once, as a load generator does, one request each: connections per worker."""
    with ExitStack() as stack:
        connections = [HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(clients)]
        for connection in connections:
            connection.connect()
            stack.callback(connection.close)
        for connection in connections:  # answered, so accepted by a worker and still open (keep-alive)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            assert response.status == 200
        accepted = _accepted(port)
        held = {pid: _sockets_of(pid) for pid in workers}
        return Counter(pid for connection in connections for pid, inodes in held.items()
                       if accepted[connection.sock.getsockname()[1]] in inodes)


def test_every_round_of_keep_alive_connections_is_spread_over_both_workers(server: tuple[int, int]) -> None:
    port, supervisor = server
    workers = _workers(port, supervisor)
    rounds = [_keep_alive_round(port, workers, clients=32) for _ in range(20)]
    assert all(sum(per_worker.values()) == 32 for per_worker in rounds)
    # Each connection is hashed to one of the two listeners: a round all on one worker has odds of 2**-31.
    # On one shared socket, whichever worker woke first often took a whole round.
    assert all(len(per_worker) == 2 for per_worker in rounds), rounds


def test_a_killed_workers_listener_goes_with_it_and_its_replacement_binds_its_own(
    server: tuple[int, int]
) -> None:
    port, supervisor = server
    victim = min(_workers(port, supervisor))
    victims_listener = _sockets_of(victim) & _tcp_sockets(port, LISTEN)
    os.kill(victim, signal.SIGKILL)
    workers = _workers(port, supervisor, but=victim)
    listening = _tcp_sockets(port, LISTEN)
    assert victim not in workers and len(workers) == 2
    assert not victims_listener & listening  # nobody kept it open to queue connections for a dead worker
    assert len(listening) == 2
    assert all(len(_sockets_of(pid) & listening) == 1 for pid in workers)
    assert not _sockets_of(supervisor) & listening
    assert len(_keep_alive_round(port, workers, clients=32)) == 2


def test_a_second_serve_on_a_taken_port_exits_naming_the_address(
    server: tuple[int, int], tmp_path: Path
) -> None:
    port, supervisor = server
    log = tmp_path / "second.log"
    second = start_serve(sqlite_serve_env(tmp_path), port=port, workers=2, log=log)
    try:
        exit_code = second.wait(timeout=60)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
    assert exit_code == 3  # uvicorn's start-up failure
    assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" in log.read_text()
    assert len(_workers(port, supervisor)) == 2  # the first one still serves alone, on its own two sockets
    assert len(_tcp_sockets(port, LISTEN)) == 2


def test_sigterm_to_the_supervisor_stops_every_worker_and_frees_the_port(tmp_path: Path) -> None:
    port = free_port()
    with serve_process(sqlite_serve_env(tmp_path), port=port, workers=2, log=tmp_path / "server.log") as proc:
        workers = _workers(port, proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGTERM)  # the supervisor alone, as `kill PID` or a service manager sends it
        assert proc.wait(timeout=30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert not _tcp_sockets(port, LISTEN)
    with socket.socket() as rebind:  # the port is free for the next start (TIME_WAIT aside, as serve binds)
        rebind.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rebind.bind(("127.0.0.1", port))
