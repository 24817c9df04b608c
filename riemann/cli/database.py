"""Opening the search database for a command."""

import argparse
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from riemann.cli import config
from riemann.embedded_postgres import EmbeddedPostgresError
from riemann.jobs.connection import with_reconnect
from riemann.store import Store

logger = logging.getLogger(__name__)


@contextmanager
def database_dsn(args: argparse.Namespace, *, create: bool = True) -> Iterator[str]:
    """The DSN of the command's database, for as long as the block runs.

    Without a configured database, the embedded server's: started when needed and,
    once the block ends, stopped unless another riemann process still uses it. With
    `create` False, a data folder that holds no database yet is an error instead of
    a reason to make one (a command that only reads has nothing to read there).
    """
    dsn = config.configured_dsn(args.dsn, os.environ)
    if dsn is not None:
        yield dsn
        return
    server = config.embedded_server(args.data_dir)
    dsn = server.start(create=create)
    try:
        yield dsn
    finally:
        try:
            server.stop_if_unused()
        except EmbeddedPostgresError as problem:
            logger.warning(
                "embedded postgres left running", extra={"reason": str(problem)}
            )


def check_database(
    store: Store, check_schema: bool, stop: threading.Event | None
) -> None:
    """Reach the database (and, with `check_schema`, find its schema current).

    A one-shot command (no `stop`) fails at once when the database cannot be
    reached. A long-running job waits out an outage, logging each try, since under a
    supervisor (compose, systemd) exiting would only restart it into the same outage;
    a refused login or a missing database still ends it with one clear error.
    """
    check = store.check_schema if check_schema else store.schema_version
    if stop is None:
        check()
    else:
        with_reconnect(check, stop, wait_out_refusals=False)


@contextmanager
def opened_store(
    args: argparse.Namespace,
    check_schema: bool = True,
    stop: threading.Event | None = None,
    create: bool = True,
) -> Iterator[Store]:
    """A connected store; with `check_schema`, only if the schema is current.

    With `stop`, waits for a database that is down until it is up or `stop` is set
    (see `check_database`); `create` is as for `database_dsn`.
    """
    with database_dsn(args, create=create) as dsn, Store(dsn) as store:
        check_database(store, check_schema, stop)
        yield store
