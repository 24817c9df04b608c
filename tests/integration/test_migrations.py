import pytest

from riemann.store import SchemaError, Store
from riemann.store.migrations import latest_version
from tests.integration.conftest import sql


def test_upgrade_creates_the_schema_and_records_its_version(dsn):
    with Store(dsn) as store:
        assert store.schema_version() == 0
        assert store.upgrade() == (0, latest_version())
        assert store.schema_version() == latest_version()
    tables = {
        row[0]
        for row in sql(
            dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert {
        "searches",
        "search_blocks",
        "witnesses",
        "workers",
        "schema_migrations",
    } <= tables


def test_upgrade_is_idempotent(dsn):
    with Store(dsn) as store:
        store.upgrade()
        assert store.upgrade() == (latest_version(), latest_version())
    assert sql(dsn, "SELECT count(*) FROM schema_migrations") == [(latest_version(),)]


def test_a_schema_newer_than_the_code_is_refused(dsn):
    with Store(dsn) as store:
        store.upgrade()
        sql(dsn, "INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
        with pytest.raises(SchemaError, match="version 999, newer"):
            store.upgrade()
        with pytest.raises(SchemaError, match="upgrade riemann"):
            store.check_schema()


def test_a_database_without_the_schema_asks_for_an_upgrade(dsn):
    with Store(dsn) as store, pytest.raises(SchemaError, match="riemann db upgrade"):
        store.check_schema()
