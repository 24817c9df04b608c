"""The store: the only code that talks to PostgreSQL, and the queue protocol.

A block moves NOT_STARTED -> IN_PROGRESS -> FINISHED, or to FAILED (claimable again
after a delay) and, after too many attempts, to DEAD. A claim is one UPDATE whose
subquery takes the oldest claimable block with FOR UPDATE SKIP LOCKED, so concurrent
workers never wait on each other or claim the same block. The claim grants a lease (a
random id and an expiry); every later write names the lease and succeeds only while
the block is still IN_PROGRESS under that same lease, so a worker whose lease expired,
or whose block the janitor already failed, can change nothing. A block's results and
its FINISHED state are written in one transaction.

Jobs need not poll to learn that something changed: enqueued, released and requeued
blocks notify the channel workers listen on, and claims the one generators listen on
(LISTEN/NOTIFY), so an idle worker claims new work at once and a generator tops the
queue up as soon as it shrinks. A notice is only a hint to look again; jobs still poll,
less often, in case one is lost (a connection pooler in between drops them, say).
"""

import logging
import select
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from riemann.store.errors import (
    BlockRejectedError,
    DatabaseUnavailableError,
    SchemaError,
    SearchConflictError,
    StoreError,
)
from riemann.store.migrations import available_migrations, latest_version
from riemann.store.queries import query
from riemann.strategies.base import BlockResult, SearchBlock, WitnessRecord
from riemann.witness import decimal_text, integer_text

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
WITNESS_DIGITS = 30
"""Significant digits of witness values and logarithms as stored."""


@dataclass(frozen=True)
class Search:
    strategy: str
    store_threshold: str
    start_ordinal: int
    end_ordinal: int | None
    next_ordinal: int

    @property
    def fully_enqueued(self) -> bool:
        return self.end_ordinal is not None and self.next_ordinal >= self.end_ordinal


@dataclass(frozen=True)
class ClaimedBlock:
    """A block held under a lease by one worker."""

    block_id: int
    strategy: str
    start_index: str
    end_index: str
    start_ordinal: int
    end_ordinal: int
    lease_id: str
    attempts: int
    store_threshold: str


@dataclass(frozen=True)
class ExpiredLease:
    block_id: int
    strategy: str
    attempts: int
    worker_id: str | None
    new_state: str


@dataclass(frozen=True)
class StrategyProgress:
    """How far one strategy's search has come, in raw numbers."""

    search: Search
    blocks: dict[str, int]
    candidates_by_state: dict[str, int]
    first_unfinished: int
    issued_through: int | None
    candidates_checked: int
    last_finished_at: datetime | None
    recent_candidates: int
    recent_seconds: float
    """The part of the recent window in which those candidates were checked."""
    best_n: int | None
    best_witness_value: Decimal | None
    best_block_id: int | None


@dataclass(frozen=True)
class LiveWorker:
    worker_id: str
    hostname: str
    pid: int
    started_at: datetime
    last_seen_at: datetime
    current_block_id: int | None
    blocks_finished: int
    candidates_per_second: float | None


@dataclass(frozen=True)
class DeadBlock:
    block_id: int
    strategy: str
    start_index: str
    end_index: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class StoredWitness:
    """A row of the witnesses table, in the export's column order."""

    n: Decimal
    divisor_sum: Decimal
    witness_value: Decimal
    log_n: Decimal
    strategy: str
    level: int | None
    exponents: list[int] | None
    block_id: int


PERMANENT_CONNECTION_ERRORS = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "invalid dsn",
    "invalid connection option",
    "invalid uri",
    'missing "="',
)
"""Parts of libpq's messages for refusals that waiting will not change."""


def is_permanent_connection_error(error: psycopg2.Error) -> bool:
    """True when a failed connection is a configuration mistake, not an outage."""
    text = str(error).lower()
    return isinstance(error, psycopg2.ProgrammingError) or any(
        marker in text for marker in PERMANENT_CONNECTION_ERRORS
    )


def describe_connection_error(error: psycopg2.Error) -> str:
    """The first line of a libpq error that says what went wrong, without the
    server's severity word: 'connection to server at "db", port 5432 failed:
    password authentication failed for user "riemann"'."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    fatal = [line for line in lines if "FATAL:" in line]
    line = (fatal or lines or [type(error).__name__])[0]
    before, _, reason = line.partition("FATAL:")
    return f"{before}{reason.strip()}" if reason else line


class Store:
    """A connection to the search database and every operation on it."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._connection: psycopg2.extensions.connection | None = None
        self._listen_queries: list[str] = []
        """LISTEN statements to repeat on every new connection."""

    def connect(self) -> None:
        """Open the connection (again); DatabaseUnavailableError if that fails.

        A new connection listens on the channels the old one did.
        """
        self.close()
        try:
            self._connection = psycopg2.connect(
                self._dsn,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name="riemann",
            )
        except psycopg2.Error as error:
            raise DatabaseUnavailableError(
                f"cannot connect to the database: {describe_connection_error(error)}",
                permanent=is_permanent_connection_error(error),
            ) from None
        if self._listen_queries:
            with self._transaction() as cursor:
                for name in self._listen_queries:
                    cursor.execute(query(name))

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except psycopg2.Error:
                logger.debug("closing a broken connection failed")
            self._connection = None

    def __enter__(self) -> "Store":
        # The connection opens with the first transaction, so a job that enters a
        # store while the database is down can wait for it like any later outage.
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open_connection(self) -> psycopg2.extensions.connection:
        """The connection, opened again if it was never opened or was lost."""
        if self._connection is None or self._connection.closed:
            self.connect()
        assert self._connection is not None
        return self._connection

    @contextmanager
    def _losing_the_connection_is_unavailable(self) -> Iterator[None]:
        """A lost connection becomes DatabaseUnavailableError, and the next use of
        the store reconnects."""
        try:
            yield
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
            self.close()
            raise DatabaseUnavailableError(
                f"lost the database connection: {describe_connection_error(error)}"
            ) from None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor in a transaction: committed on success, rolled back on error.

        A lost connection becomes DatabaseUnavailableError, and the next transaction
        reconnects.
        """
        connection = self._open_connection()
        try:
            with (
                self._losing_the_connection_is_unavailable(),
                connection,
                connection.cursor() as cursor,
            ):
                yield cursor
        except psycopg2.errors.UndefinedTable:
            raise SchemaError(
                "the database has no riemann schema; run `riemann db upgrade` first"
            ) from None

    # --- notices ----------------------------------------------------------------

    def listen_for_claimable_blocks(self) -> None:
        """From now on, `wait_for_notice` wakes when blocks become claimable."""
        self._listen("listen_blocks_claimable")

    def listen_for_claims(self) -> None:
        """From now on, `wait_for_notice` wakes when a block is claimed."""
        self._listen("listen_block_claimed")

    def _listen(self, name: str) -> None:
        if name in self._listen_queries:
            return
        with self._transaction() as cursor:
            cursor.execute(query(name))
        self._listen_queries.append(name)

    def wait_for_notice(self, seconds: float) -> bool:
        """Wait up to `seconds` for a notice on a channel this store listens on.

        True when one came, now or since the last wait (every pending notice is
        consumed); False after the full wait.
        """
        connection = self._open_connection()
        with self._losing_the_connection_is_unavailable():
            connection.poll()
            if not connection.notifies:
                readable, _, _ = select.select([connection], [], [], seconds)
                if readable:
                    connection.poll()
            if connection.closed:
                raise psycopg2.OperationalError("the server closed the connection")
        noticed = bool(connection.notifies)
        connection.notifies.clear()
        return noticed

    # --- schema -----------------------------------------------------------------

    def schema_version(self) -> int:
        """The version of the schema in the database (0 when there is none)."""
        with self._transaction() as cursor:
            cursor.execute(query("schema_migrations_exists"))
            if not _scalar(cursor):
                return 0
            cursor.execute(query("applied_versions"))
            versions = [row[0] for row in cursor.fetchall()]
        return max(versions, default=0)

    def upgrade(self) -> tuple[int, int]:
        """Apply every migration not yet applied; return (version before, after).

        Idempotent, and safe when several processes upgrade at once (an advisory lock
        serialises them). Refuses a database whose schema is newer than this code.
        """
        with self._transaction() as cursor:
            cursor.execute(query("lock_migrations"))
            cursor.execute(query("create_schema_migrations"))
            cursor.execute(query("applied_versions"))
            applied = {row[0] for row in cursor.fetchall()}
            before = max(applied, default=0)
            if before > latest_version():
                raise SchemaError(
                    f"the database schema is at version {before}, newer than the "
                    f"{latest_version()} this riemann knows; upgrade riemann"
                )
            for migration in available_migrations():
                if migration.version not in applied:
                    cursor.execute(migration.sql)
                    cursor.execute(
                        query("record_migration"),
                        {"version": migration.version, "name": migration.name},
                    )
                    logger.info(
                        "migration applied",
                        extra={
                            "version": migration.version,
                            "migration": migration.name,
                        },
                    )
        return before, max(before, latest_version())

    def check_schema(self) -> None:
        """Raise SchemaError unless the schema is exactly the one this code knows."""
        version = self.schema_version()
        if version == 0:
            raise SchemaError(
                "the database has no riemann schema; run `riemann db upgrade` first"
            )
        if version < latest_version():
            raise SchemaError(
                f"the database schema is at version {version}, older than "
                f"{latest_version()}; run `riemann db upgrade`"
            )
        if version > latest_version():
            raise SchemaError(
                f"the database schema is at version {version}, newer than the "
                f"{latest_version()} this riemann knows; upgrade riemann"
            )

    # --- searches and the generator ---------------------------------------------

    def get_search(self, strategy: str) -> Search | None:
        with self._transaction() as cursor:
            cursor.execute(query("get_search"), {"strategy": strategy})
            row = cursor.fetchone()
        return None if row is None else _search(row)

    def ensure_search(
        self,
        strategy: str,
        start_ordinal: int,
        end_ordinal: int | None,
        store_threshold: str,
    ) -> Search:
        """The stored search of `strategy`, created with these settings if new.

        An existing search keeps its start and threshold (a different one is a
        SearchConflictError); a later end extends it, an earlier one leaves the stored
        end as it is (the generator then stops at the earlier of the two).
        """
        with self._transaction() as cursor:
            cursor.execute(
                query("create_search"),
                {
                    "strategy": strategy,
                    "store_threshold": store_threshold,
                    "start_ordinal": start_ordinal,
                    "end_ordinal": end_ordinal,
                },
            )
            cursor.execute(query("search_for_update"), {"strategy": strategy})
            search = _search(_one(cursor))
            if search.start_ordinal != start_ordinal:
                raise SearchConflictError(
                    f"the {strategy} search in this database started at ordinal "
                    f"{search.start_ordinal}, not {start_ordinal}; keep its start or "
                    "use another database"
                )
            if Decimal(search.store_threshold) != Decimal(store_threshold):
                raise SearchConflictError(
                    f"the {strategy} search in this database stores witness values "
                    f"above {search.store_threshold}, not {store_threshold}; keep its "
                    "threshold or use another database"
                )
            stored_end = search.end_ordinal
            if stored_end is not None and (
                end_ordinal is None or end_ordinal > stored_end
            ):
                cursor.execute(
                    query("extend_search"),
                    {"strategy": strategy, "end_ordinal": end_ordinal},
                )
                search = Search(
                    search.strategy,
                    search.store_threshold,
                    search.start_ordinal,
                    end_ordinal,
                    search.next_ordinal,
                )
        return search

    def claimable_count(self, strategy: str) -> int:
        with self._transaction() as cursor:
            cursor.execute(query("claimable_count"), {"strategy": strategy})
            return int(_scalar(cursor))

    def enqueue_blocks(
        self,
        strategy: str,
        cut_blocks: Callable[[Search], Sequence[SearchBlock]],
    ) -> list[SearchBlock]:
        """Insert the blocks `cut_blocks` cuts from where the search stands.

        The search row stays locked from reading its next ordinal to storing the new
        one, so two generators at once never create overlapping or missing blocks.
        """
        with self._transaction() as cursor:
            cursor.execute(query("search_for_update"), {"strategy": strategy})
            search = _search(_one(cursor))
            blocks = list(cut_blocks(search))
            expected_start = search.next_ordinal
            for block in blocks:
                if block.start_ordinal != expected_start:
                    raise ValueError(
                        f"block {block.start}..{block.end} does not start at the "
                        f"search's next ordinal {expected_start}"
                    )
                expected_start = block.end_ordinal
            psycopg2.extras.execute_batch(
                cursor,
                query("insert_block"),
                [
                    {
                        "strategy": strategy,
                        "start_index": block.start,
                        "end_index": block.end,
                        "start_ordinal": block.start_ordinal,
                        "end_ordinal": block.end_ordinal,
                    }
                    for block in blocks
                ],
            )
            if blocks:
                cursor.execute(
                    query("advance_search"),
                    {"strategy": strategy, "next_ordinal": expected_start},
                )
                cursor.execute(query("notify_blocks_claimable"), {"strategy": strategy})
        return blocks

    def recent_throughput(self, strategy: str) -> float | None:
        """Candidates per second of one worker over the strategy's last blocks."""
        with self._transaction() as cursor:
            cursor.execute(query("recent_throughput"), {"strategy": strategy})
            value = _scalar(cursor)
        return None if value is None else float(value)

    # --- the queue protocol -------------------------------------------------------

    def claim_block(
        self, worker_id: str, lease_seconds: float, strategy: str | None = None
    ) -> ClaimedBlock | None:
        """Claim the oldest claimable block under a new lease, or None if none is."""
        with self._transaction() as cursor:
            cursor.execute(
                query("claim_block"),
                {
                    "worker_id": worker_id,
                    "lease_seconds": lease_seconds,
                    "strategy": strategy,
                },
            )
            row = cursor.fetchone()
            if row is not None:
                cursor.execute(
                    query("worker_seen"), {"worker_id": worker_id, "block_id": row[0]}
                )
                cursor.execute(query("notify_block_claimed"), {"strategy": row[1]})
        if row is None:
            return None
        (
            block_id,
            strategy_name,
            start,
            end,
            first,
            after,
            lease,
            attempts,
            threshold,
        ) = row
        return ClaimedBlock(
            block_id,
            strategy_name,
            start,
            end,
            int(first),
            int(after),
            lease,
            attempts,
            threshold,
        )

    def renew_lease(self, claim: ClaimedBlock, lease_seconds: float) -> bool:
        """Extend the lease; False when it was lost (expired or taken away).

        A renewal is also the worker's heartbeat, so a worker busy with a long block
        stays among the live ones.
        """
        with self._transaction() as cursor:
            cursor.execute(
                query("renew_lease"),
                {
                    "block_id": claim.block_id,
                    "lease_id": claim.lease_id,
                    "lease_seconds": lease_seconds,
                },
            )
            row = cursor.fetchone()
            if row is None:
                return False
            cursor.execute(
                query("worker_seen"),
                {"worker_id": row[0], "block_id": claim.block_id},
            )
            return True

    def finish_block(
        self,
        claim: ClaimedBlock,
        result: BlockResult,
        duration_seconds: float,
        worker_id: str,
    ) -> bool:
        """Store the result and mark the block FINISHED, in one transaction.

        False, with nothing written, when the lease was lost. True, again with
        nothing written, when this same result is already stored under this lease:
        finishing is safe to retry. A result the database refuses (a record already
        stored by another block, a value out of range) is a BlockRejectedError, with
        nothing written either.
        """
        try:
            return self._finish_block(claim, result, duration_seconds, worker_id)
        except (psycopg2.IntegrityError, psycopg2.DataError) as error:
            raise BlockRejectedError(
                f"the database refused the block's result: "
                f"{describe_connection_error(error)}"
            ) from None

    def _finish_block(
        self,
        claim: ClaimedBlock,
        result: BlockResult,
        duration_seconds: float,
        worker_id: str,
    ) -> bool:
        best, best_above_5040 = result.best, result.best_above_5040
        with self._transaction() as cursor:
            cursor.execute(
                query("finish_block"),
                {
                    "block_id": claim.block_id,
                    "lease_id": claim.lease_id,
                    "duration_seconds": duration_seconds,
                    "candidates_checked": result.candidates_checked,
                    "best_n": _n_of(best),
                    "best_witness_value": _witness_value_of(best),
                    "best_above_5040_n": _n_of(best_above_5040),
                    "best_above_5040_witness_value": _witness_value_of(best_above_5040),
                    "digest": result.digest,
                },
            )
            if cursor.rowcount != 1:
                # A retry after a commit whose reply was lost finds its own result.
                cursor.execute(
                    query("finished_under_lease"),
                    {
                        "block_id": claim.block_id,
                        "lease_id": claim.lease_id,
                        "digest": result.digest,
                    },
                )
                return cursor.fetchone() is not None
            psycopg2.extras.execute_batch(
                cursor,
                query("insert_witness"),
                [
                    {
                        "strategy": claim.strategy,
                        "n": integer_text(record.n),
                        "divisor_sum": integer_text(record.divisor_sum),
                        "witness_value": decimal_text(
                            record.witness_value, WITNESS_DIGITS
                        ),
                        "log_n": decimal_text(record.log_n, WITNESS_DIGITS),
                        "level": record.level,
                        "exponents": None
                        if record.exponents is None
                        else list(record.exponents),
                        "block_id": claim.block_id,
                    }
                    for record in result.records
                ],
            )
            rate = (
                result.candidates_checked / duration_seconds
                if duration_seconds > 0
                else None
            )
            cursor.execute(
                query("worker_finished_block"),
                {"worker_id": worker_id, "candidates_per_second": rate},
            )
        return True

    def fail_block(
        self,
        claim: ClaimedBlock,
        error: str,
        new_state: str,
        retry_after_seconds: float,
    ) -> bool:
        """Mark the block FAILED (claimable after a delay) or DEAD, with the error.

        False when the lease was already lost.
        """
        with self._transaction() as cursor:
            cursor.execute(
                query("fail_block"),
                {
                    "block_id": claim.block_id,
                    "lease_id": claim.lease_id,
                    "state": new_state,
                    "retry_after_seconds": retry_after_seconds,
                    "error": error,
                    "lease_expired": False,
                },
            )
            return cursor.rowcount == 1

    def release_block(self, claim: ClaimedBlock) -> bool:
        """Give the block back unprocessed, without counting the attempt."""
        with self._transaction() as cursor:
            cursor.execute(
                query("release_block"),
                {"block_id": claim.block_id, "lease_id": claim.lease_id},
            )
            released: bool = cursor.rowcount == 1
            if released:
                cursor.execute(
                    query("notify_blocks_claimable"), {"strategy": claim.strategy}
                )
            return released

    def expire_leases(
        self,
        stale_after_seconds: float,
        decide: Callable[[int], tuple[str, float]],
    ) -> list[ExpiredLease]:
        """Fail every block whose lease expired more than `stale_after_seconds` ago.

        `decide(attempts)` gives the new state and retry delay. The rows are locked
        while they are read and updated under the lease they were read with, so a
        worker that finishes at the same moment wins, and the janitor changes nothing.
        """
        expired = []
        with self._transaction() as cursor:
            cursor.execute(
                query("expired_leases"), {"stale_after_seconds": stale_after_seconds}
            )
            for block_id, strategy, lease_id, attempts, worker_id in cursor.fetchall():
                new_state, retry_after = decide(attempts)
                cursor.execute(
                    query("fail_block"),
                    {
                        "block_id": block_id,
                        "lease_id": lease_id,
                        "state": new_state,
                        "retry_after_seconds": retry_after,
                        "error": f"lease expired on worker {worker_id}",
                        "lease_expired": True,
                    },
                )
                if cursor.rowcount == 1:
                    expired.append(
                        ExpiredLease(block_id, strategy, attempts, worker_id, new_state)
                    )
        return expired

    def requeue_dead(self, block_ids: Sequence[int] | None = None) -> list[int]:
        """Make DEAD blocks (all, or those named) claimable again, attempts reset."""
        with self._transaction() as cursor:
            cursor.execute(
                query("requeue_dead"),
                {"block_ids": None if block_ids is None else list(block_ids)},
            )
            requeued = cursor.fetchall()
            for strategy in sorted({row[1] for row in requeued}):
                cursor.execute(query("notify_blocks_claimable"), {"strategy": strategy})
            return sorted(row[0] for row in requeued)

    # --- workers ------------------------------------------------------------------

    def register_worker(self, worker_id: str, hostname: str, pid: int) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                query("upsert_worker"),
                {"worker_id": worker_id, "hostname": hostname, "pid": pid},
            )

    def worker_seen(self, worker_id: str, block_id: int | None) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                query("worker_seen"), {"worker_id": worker_id, "block_id": block_id}
            )

    def worker_stopped(self, worker_id: str) -> None:
        with self._transaction() as cursor:
            cursor.execute(query("worker_stopped"), {"worker_id": worker_id})

    def live_workers(self, seen_within_seconds: float) -> list[LiveWorker]:
        with self._transaction() as cursor:
            cursor.execute(
                query("live_workers"), {"seen_within_seconds": seen_within_seconds}
            )
            return [LiveWorker(*row) for row in cursor.fetchall()]

    # --- reading results ------------------------------------------------------------

    def searches(self) -> list[Search]:
        with self._transaction() as cursor:
            cursor.execute(query("searches"))
            return [_search(row) for row in cursor.fetchall()]

    def progress(self, recent_seconds: float) -> list[StrategyProgress]:
        """Per strategy: block counts, how far it is complete, totals and the best."""
        report = []
        with self._transaction() as cursor:
            cursor.execute(query("block_counts"))
            counts: dict[str, dict[str, int]] = {}
            candidates: dict[str, dict[str, int]] = {}
            for strategy, state, count, candidate_count in cursor.fetchall():
                counts.setdefault(strategy, {})[state] = int(count)
                candidates.setdefault(strategy, {})[state] = int(candidate_count)
            cursor.execute(query("searches"))
            for search in [_search(row) for row in cursor.fetchall()]:
                parameters: dict[str, Any] = {"strategy": search.strategy}
                cursor.execute(query("first_unfinished"), parameters)
                first_unfinished = _scalar(cursor)
                cursor.execute(query("issued_through"), parameters)
                issued_through = _scalar(cursor)
                cursor.execute(query("finished_totals"), parameters)
                checked, last_finished_at = _one(cursor)
                cursor.execute(
                    query("throughput_since"),
                    {"strategy": search.strategy, "seconds": recent_seconds},
                )
                recent, busy_seconds = _one(cursor)
                cursor.execute(query("best_above_robin_bound"), parameters)
                best = cursor.fetchone() or (None, None, None)
                report.append(
                    StrategyProgress(
                        search=search,
                        blocks=counts.get(search.strategy, {}),
                        candidates_by_state=candidates.get(search.strategy, {}),
                        first_unfinished=search.next_ordinal
                        if first_unfinished is None
                        else int(first_unfinished),
                        issued_through=None
                        if issued_through is None
                        else int(issued_through),
                        candidates_checked=int(checked),
                        last_finished_at=last_finished_at,
                        recent_candidates=int(recent),
                        recent_seconds=min(
                            recent_seconds, float(busy_seconds or recent_seconds)
                        ),
                        best_n=None if best[0] is None else int(best[0]),
                        best_witness_value=best[1],
                        best_block_id=best[2],
                    )
                )
        return report

    def finished_between(self, strategy: str, start: int, end: int) -> int:
        """How many candidates with ordinals in [start, end) are in finished blocks."""
        with self._transaction() as cursor:
            cursor.execute(
                query("finished_between"),
                {"strategy": strategy, "start": start, "end": end},
            )
            return int(_scalar(cursor))

    def last_finished_at(self) -> datetime | None:
        with self._transaction() as cursor:
            cursor.execute(query("last_finished_at"))
            value: datetime | None = _scalar(cursor)
            return value

    def dead_blocks(self) -> list[DeadBlock]:
        with self._transaction() as cursor:
            cursor.execute(query("dead_blocks"))
            return [DeadBlock(*row) for row in cursor.fetchall()]

    def witnesses(
        self, min_witness: str | None = None, strategy: str | None = None
    ) -> Generator[StoredWitness, None, None]:
        """Stored witness records, by strategy and n, read in batches."""
        connection = self._open_connection()
        try:
            with (
                self._losing_the_connection_is_unavailable(),
                connection,
                connection.cursor(name="witnesses") as cursor,
            ):
                cursor.itersize = 5000
                cursor.execute(
                    query("witnesses"),
                    {"min_witness": min_witness, "strategy": strategy},
                )
                for row in cursor:
                    yield StoredWitness(*row)
        except psycopg2.errors.InvalidTextRepresentation:
            raise StoreError(f"--min-witness {min_witness!r} is not a number") from None


def _n_of(record: WitnessRecord | None) -> str | None:
    return None if record is None else integer_text(record.n)


def _witness_value_of(record: WitnessRecord | None) -> str | None:
    if record is None:
        return None
    return decimal_text(record.witness_value, WITNESS_DIGITS)


def _search(row: tuple[Any, ...]) -> Search:
    strategy, threshold, start, end, next_ordinal = row
    return Search(
        strategy,
        threshold,
        int(start),
        None if end is None else int(end),
        int(next_ordinal),
    )


def _one(cursor: psycopg2.extensions.cursor) -> tuple[Any, ...]:
    row = cursor.fetchone()
    if row is None:
        raise StoreError("the database returned no row where one was expected")
    return tuple(row)


def _scalar(cursor: psycopg2.extensions.cursor) -> Any:
    return _one(cursor)[0]
