"""`riemann db upgrade`, `riemann db check` and `riemann db psql`."""

import argparse
import os
import shutil
import signal
import subprocess

from psycopg2 import ProgrammingError
from psycopg2.extensions import make_dsn, parse_dsn

from riemann.cli import config, output
from riemann.cli.database import database_dsn, opened_store
from riemann.cli.errors import UsageError


def upgrade(args: argparse.Namespace) -> int:
    with opened_store(args, check_schema=False) as store:
        before, after = store.upgrade()
    if before == after:
        output.say(f"schema is up to date at version {after}")
    else:
        output.say(f"schema migrated from version {before} to {after}")
    return output.EXIT_OK


def check(args: argparse.Namespace) -> int:
    with opened_store(args, check_schema=True, create=False) as store:
        version = store.schema_version()
    output.say(f"database reachable, schema at version {version}")
    return output.EXIT_OK


def psql(args: argparse.Namespace) -> int:
    """psql on the search database, with its exit code.

    Ctrl-C belongs to psql (it cancels the running query), so this process ignores
    it until psql ends; the embedded server stays up until then.
    """
    arguments = list(args.psql_arguments)
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    with database_dsn(args, create=False) as dsn:
        program = _psql_program(args)
        connection, environment = _psql_connection(dsn)
        session = subprocess.Popen([program, *connection, *arguments], env=environment)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return session.wait()
        finally:
            signal.signal(signal.SIGINT, previous)


def _psql_program(args: argparse.Namespace) -> str:
    """psql from PATH, else the embedded server's own."""
    found = shutil.which("psql")
    if found is not None:
        return found
    if config.configured_dsn(args.dsn, os.environ) is None:
        return config.embedded_server(args.data_dir).client_program("psql")
    raise UsageError(
        "psql is not installed; install PostgreSQL's client (for example "
        "`apt-get install postgresql-client`)"
    )


def _psql_connection(dsn: str) -> tuple[list[str], dict[str, str]]:
    """psql's connection arguments and environment for `dsn`: a password goes in
    PGPASSWORD, never on a command line that `ps` shows."""
    environment = dict(os.environ)
    if not dsn:  # libpq's own PG* variables
        return [], environment
    try:
        parameters = parse_dsn(dsn)
    except ProgrammingError as error:
        raise UsageError(f"the database DSN is malformed: {error}") from None
    password = parameters.pop("password", None)
    if password is not None:
        environment["PGPASSWORD"] = password
    return [f"--dbname={make_dsn(**parameters)}"], environment
