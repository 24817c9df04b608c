"""Schema migrations: numbered `.sql` files in `migrations/`, applied in order, once."""

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

MIGRATION_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def available_migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, by version."""
    found = []
    for entry in resources.files("riemann.store").joinpath("migrations").iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(
            f"migrations must be numbered 1, 2, 3, ...; found {versions}"
        )
    return tuple(found)


def latest_version() -> int:
    return available_migrations()[-1].version
