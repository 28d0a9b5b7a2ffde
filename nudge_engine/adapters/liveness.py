"""Checking a pooled PostgreSQL connection is alive before use, without a round trip on every checkout.

SQLAlchemy's ``pool_pre_ping`` pings (an empty statement in autocommit) every time a connection leaves
the pool. On a busy API that is one more round trip, and one more server wake-up, per request, mostly
for connections that were in use a few milliseconds earlier. :func:`check_liveness` pings only when it
cannot tell locally, as HikariCP does with its ``aliveBypassWindowMs``:

- a connection back in the pool for less than ``bypass`` seconds has its socket polled without waiting.
  A server that ended the session (``pg_terminate_backend``, a restart, ``idle_session_timeout``) sent
  its notice and closed the socket, which makes the socket readable; only then is it pinged;
- a connection idle for longer is pinged as before; one the driver already knows is closed is replaced
  without a ping.

A ping that fails with a disconnect invalidates the pool, as ``pool_pre_ping`` does: a restarted server
left every pooled connection dead. What the local check cannot see, a link that dropped silently inside
the window, fails the request's first statement; SQLAlchemy reports that as a disconnect, invalidates
the pool, and the next checkout connects afresh.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError, InvalidatePoolError

PING_BYPASS_S = 0.5  # HikariCP's default alive-bypass window
_RETURNED_AT = "nudge_liveness_returned_at"  # in the connection record's info: when it last came back


def check_liveness(engine: Engine, *, bypass: float = PING_BYPASS_S,
                   clock: Callable[[], float] = time.monotonic) -> None:
    """Check ``engine``'s pooled connections at checkout (use instead of ``pool_pre_ping``)."""
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = clock()  # just opened: as good as just used

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED_AT] = clock()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if getattr(dbapi_connection, "closed", False):  # this one only: the others are checked in their turn
            raise DisconnectionError("the driver reports the connection closed")
        returned = record.info.get(_RETURNED_AT)
        if returned is not None and clock() - returned < bypass and not has_input(dbapi_connection):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise InvalidatePoolError(f"the ping failed: {type(error).__name__}") from error
            raise


def has_input(dbapi_connection: Any) -> bool:
    """Whether the server sent something to an idle connection (its socket is readable now), or the socket
    cannot be polled (a driver without psycopg's ``pgconn``): either way, a ping must tell."""
    try:
        fd = int(dbapi_connection.pgconn.socket)
    except Exception:  # another driver (no pgconn), or psycopg with no socket left: the ping tells
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))
