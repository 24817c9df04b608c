"""Opening the search database for a command."""

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from riemann.cli import config
from riemann.store import Store


def command_dsn(args: argparse.Namespace) -> str:
    """The DSN of the command's database, starting the embedded server if needed."""
    dsn, _ = config.resolve_dsn(args.dsn, args.data_dir)
    return dsn


@contextmanager
def opened_store(
    args: argparse.Namespace, check_schema: bool = True
) -> Iterator[Store]:
    """A connected store; with `check_schema`, only if the schema is current."""
    with Store(command_dsn(args)) as store:
        if check_schema:
            store.check_schema()
        yield store
