"""Opening the search database for a command."""

import argparse
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from riemann.cli import config
from riemann.jobs.connection import with_reconnect
from riemann.store import Store


def command_dsn(args: argparse.Namespace) -> str:
    """The DSN of the command's database, starting the embedded server if needed."""
    dsn, _ = config.resolve_dsn(args.dsn, args.data_dir)
    return dsn


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
) -> Iterator[Store]:
    """A connected store; with `check_schema`, only if the schema is current.

    With `stop`, waits for a database that is down until it is up or `stop` is set
    (see `check_database`).
    """
    with Store(command_dsn(args)) as store:
        check_database(store, check_schema, stop)
        yield store
