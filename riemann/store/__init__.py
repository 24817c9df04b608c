"""The search database: schema migrations, the queue protocol and result queries."""

from riemann.store.errors import (
    BlockRejectedError,
    DatabaseUnavailableError,
    SchemaError,
    SearchConflictError,
    StoreError,
)
from riemann.store.store import (
    ClaimedBlock,
    DeadBlock,
    ExpiredLease,
    LiveWorker,
    Search,
    Store,
    StoredWitness,
    StrategyProgress,
)

__all__ = [
    "BlockRejectedError",
    "ClaimedBlock",
    "DatabaseUnavailableError",
    "DeadBlock",
    "ExpiredLease",
    "LiveWorker",
    "SchemaError",
    "Search",
    "SearchConflictError",
    "Store",
    "StoreError",
    "StoredWitness",
    "StrategyProgress",
]
