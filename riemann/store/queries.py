"""The store's SQL, read once from `sql/queries.sql`, where each query is named."""

from functools import cache
from importlib import resources

NAME_MARKER = "-- name:"


def parse_queries(text: str) -> dict[str, str]:
    """{name: query} from text in which each query follows a `-- name: NAME` line."""
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(NAME_MARKER):
            if name is not None:
                queries[name] = "\n".join(lines).strip()
            name = line[len(NAME_MARKER) :].strip()
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice")
            lines = []
        elif name is not None and not line.startswith("--"):
            lines.append(line)
    if name is not None:
        queries[name] = "\n".join(lines).strip()
    return queries


@cache
def query(name: str) -> str:
    """The text of the query called `name`."""
    return _all_queries()[name]


@cache
def _all_queries() -> dict[str, str]:
    text = resources.files("riemann.store").joinpath("sql/queries.sql").read_text()
    return parse_queries(text)
