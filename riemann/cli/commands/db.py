"""`riemann db upgrade` and `riemann db check`."""

import argparse

from riemann.cli import output
from riemann.cli.database import opened_store


def upgrade(args: argparse.Namespace) -> int:
    with opened_store(args, check_schema=False) as store:
        before, after = store.upgrade()
    if before == after:
        output.say(f"schema is up to date at version {after}")
    else:
        output.say(f"schema migrated from version {before} to {after}")
    return output.EXIT_OK


def check(args: argparse.Namespace) -> int:
    with opened_store(args, check_schema=True) as store:
        version = store.schema_version()
    output.say(f"database reachable, schema at version {version}")
    return output.EXIT_OK
