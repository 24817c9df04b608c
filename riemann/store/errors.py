"""What can go wrong with the database, each said in one sentence a user can act on."""


class StoreError(Exception):
    """A database problem with a message meant for the user."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached, refused the login, or dropped the connection.

    `permanent` marks a refusal that waiting will not change (a wrong password, a
    database that does not exist), as opposed to an outage a job can wait out.
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class SchemaError(StoreError):
    """The schema is missing, or newer than this version of riemann."""


class SearchConflictError(StoreError):
    """A request that contradicts the search already stored (its start or threshold)."""


class BlockRejectedError(StoreError):
    """The database refused a block's result; retrying the same block cannot help."""
