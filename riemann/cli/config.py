"""Where the database is: --dsn, RIEMANN_DSN, the libpq variables, or the embedded one.

A `.env` file in the working directory is read first; variables already set in the
environment win over it.
"""

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import load_dotenv

from riemann.embedded_postgres import EmbeddedPostgres, default_data_dir

LIBPQ_VARIABLES = (
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSERVICE",
)


def load_dotenv_file(folder: Path | None = None) -> None:
    load_dotenv((folder or Path.cwd()) / ".env", override=False)


def configured_dsn(dsn_option: str | None, environ: Mapping[str, str]) -> str | None:
    """The DSN the user configured, "" for "libpq reads PG* itself", None for none."""
    if dsn_option:
        return dsn_option
    if environ.get("RIEMANN_DSN"):
        return environ["RIEMANN_DSN"]
    if any(environ.get(name) for name in LIBPQ_VARIABLES):
        return ""
    return None


def embedded_server(data_dir: Path | None) -> EmbeddedPostgres:
    return EmbeddedPostgres(data_dir or default_data_dir())


def resolve_dsn(
    dsn_option: str | None,
    data_dir: Path | None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, EmbeddedPostgres | None]:
    """The DSN to use, and the embedded server started for it if none is configured."""
    dsn = configured_dsn(dsn_option, os.environ if environ is None else environ)
    if dsn is not None:
        return dsn, None
    server = embedded_server(data_dir)
    return server.start(), server
