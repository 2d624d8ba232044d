"""Django's PostgreSQL backend with a connection health check that costs no round trip when idle."""

import select

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        """Whether the connection can still run a query: checked locally while it is idle.

        CONN_HEALTH_CHECKS makes Django call this before each request's first query, and the stock check
        sends `SELECT 1`: one round trip more on every request (about a tenth of a sync push here). A
        connection the server ended (restart, failover, pg_terminate_backend, idle timeout, a dropped
        proxy) has the server's error message or EOF waiting on its socket, and an idle connection that
        never LISTENs receives nothing else. So an idle connection with nothing to read is usable; any
        other state gets the stock check.
        """
        if self.connection is None:
            return False
        pgconn = self.connection.pgconn
        try:
            idle = pgconn.status == pq.ConnStatus.OK and pgconn.transaction_status == pq.TransactionStatus.IDLE
            if not idle:
                return super().is_usable()
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
        except (OSError, ValueError, psycopg.Error):
            return False
        return not readable or super().is_usable()
