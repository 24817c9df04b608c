"""Where the database is: --dsn, RIEMANN_DSN, the libpq variables, or the embedded one.

A `.env` file in the working directory is read first; variables already set in the
environment win over it.
"""

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
