"""What can go wrong with the database, each said in one sentence a user can act on."""


class StoreError(Exception):
    """A database problem with a message meant for the user."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached, refused the login, or dropped the connection."""


class SchemaError(StoreError):
    """The schema is missing, or newer than this version of riemann."""


class SearchConflictError(StoreError):
    """A request that contradicts the search already stored (its start or threshold)."""
