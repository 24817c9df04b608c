"""`riemann`: argument parsing and dispatch to one function per subcommand."""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from riemann import __version__
from riemann.cli import config, output
from riemann.cli.errors import UsageError
from riemann.embedded_postgres import EmbeddedPostgresError
from riemann.jobs.connection import StoppedError
from riemann.store import StoreError
from riemann.strategies import InvalidIndexError, UnknownStrategyError, strategy_names

Command = Callable[[argparse.Namespace], int]

DEFAULT_THRESHOLD = "1.767"
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_FORMATS = ["text", "json"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds"
        ) from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


MAX_DECIMAL_EXPONENT = 1000
"""Witness values lie between 0 and about 10: a larger power of ten is a typing slip
(and PostgreSQL's NUMERIC would refuse some)."""


def decimal_number(text: str) -> str:
    """A decimal number kept as the text the user wrote (it is stored as given).

    Only ASCII digits: Python's Decimal also reads other scripts' digits, which MPFR,
    and so every worker, would refuse.
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not text.isascii():
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number")
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if value and abs(value.adjusted()) > MAX_DECIMAL_EXPONENT:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: write a number between "
            f"1e-{MAX_DECIMAL_EXPONENT} and 1e{MAX_DECIMAL_EXPONENT}"
        )
    return text.strip()


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("database")
    group.add_argument(
        "--dsn",
        help="libpq connection string or URL of the search database (default: "
        "RIEMANN_DSN, else the PG* variables, else the embedded PostgreSQL)",
    )
    group.add_argument(
        "--data-dir",
        type=Path,
        help="folder of the embedded PostgreSQL used when no database is configured "
        "(default: RIEMANN_DATA_DIR, else a folder under your home)",
    )


def _add_logging_options(parser: argparse.ArgumentParser, default_level: str) -> None:
    group = parser.add_argument_group("logging")
    group.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=os.environ.get("RIEMANN_LOG_LEVEL", default_level).upper(),
        help=f"least severe log lines shown (default: RIEMANN_LOG_LEVEL or "
        f"{default_level})",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("RIEMANN_LOG_FORMAT", "text"),
        help="log lines as text for people or JSON for collectors",
    )


def _add_strategy_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    group = parser.add_argument_group("search")
    group.add_argument(
        "--strategy",
        choices=strategy_names(),
        default=default,
        required=default is None,
        help="how candidates are enumerated"
        + (f" (default: {default})" if default else ""),
    )
    group.add_argument(
        "--until-level",
        type=non_negative_int,
        metavar="L",
        help="superabundant: search every level up to and including L",
    )
    group.add_argument(
        "--start",
        type=non_negative_int,
        metavar="N",
        help="exhaustive: the first n (default 5041)",
    )
    group.add_argument(
        "--until",
        type=non_negative_int,
        metavar="N",
        help="exhaustive: search every n up to and including N",
    )
    group.add_argument(
        "--store-threshold",
        type=decimal_number,
        default=os.environ.get("RIEMANN_STORE_THRESHOLD", DEFAULT_THRESHOLD),
        metavar="W",
        help="store every candidate whose witness value exceeds W; fixed when the "
        "search is created (default: RIEMANN_STORE_THRESHOLD or "
        f"{DEFAULT_THRESHOLD})",
    )
    group.add_argument(
        "--block-size",
        type=positive_int,
        metavar="CANDIDATES",
        help="candidates per block (default: sized so a block takes --target-seconds)",
    )


def _add_worker_options(parser: argparse.ArgumentParser, default_workers: str) -> None:
    group = parser.add_argument_group("workers")
    group.add_argument(
        "--workers",
        type=positive_int,
        metavar="K",
        help=f"worker processes (default: RIEMANN_WORKERS, else {default_workers})",
    )
    group.add_argument(
        "--exact",
        action="store_true",
        help="compute with exact arithmetic on every candidate instead of the compiled "
        "kernels (slow; the results are identical)",
    )
    group.add_argument(
        "--lease-seconds",
        type=positive_seconds,
        default=60.0,
        help="length of a claim's lease, renewed every third of it (default 60)",
    )


def _add_retry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("retries")
    group.add_argument(
        "--max-attempts",
        type=positive_int,
        # A text default goes through `type` like a typed value, so a bad
        # RIEMANN_MAX_ATTEMPTS is one usage error, not a traceback.
        default=os.environ.get("RIEMANN_MAX_ATTEMPTS", "5"),
        help="attempts before a failing block is DEAD (default: RIEMANN_MAX_ATTEMPTS "
        "or 5)",
    )
    group.add_argument(
        "--retry-delay",
        type=non_negative_seconds,
        default=10.0,
        metavar="SECONDS",
        help="wait before the first retry of a failed block, doubling with each "
        "further attempt (default 10)",
    )


def build_parser() -> argparse.ArgumentParser:
    from riemann.cli.commands import (
        blocks,
        cleanup,
        db,
        export,
        generate,
        process,
        run,
        status,
    )

    parser = argparse.ArgumentParser(
        prog="riemann",
        description="A distributed search for counterexamples to Robin's inequality "
        "sigma(n) < e^gamma n ln ln n (n > 5040), which holds for every such n exactly "
        "when the Riemann Hypothesis is true.",
    )
    parser.add_argument("--version", action="version", version=f"riemann {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, function: Command, help_text: str, long_running: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(function=function)
        _add_connection_options(sub)
        # Jobs log what they do; one-shot commands print results and only problems.
        _add_logging_options(sub, "INFO" if long_running else "WARNING")
        return sub

    db_parser = commands.add_parser(
        "db", help="manage the schema", description="Manage the database schema."
    )
    db_commands = db_parser.add_subparsers(
        dest="db_command", metavar="ACTION", required=True
    )
    for name, function, help_text in [
        ("upgrade", db.upgrade, "create or migrate the schema (idempotent)"),
        (
            "check",
            db.check,
            "exit 0 when the database is reachable and its schema current",
        ),
    ]:
        sub = db_commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(function=function)
        _add_connection_options(sub)
        _add_logging_options(sub, "WARNING")
    psql_help = (
        "open psql on the search database (the embedded one too, kept running "
        "while psql runs); arguments after -- go to psql"
    )
    psql_parser = db_commands.add_parser("psql", help=psql_help, description=psql_help)
    psql_parser.set_defaults(function=db.psql)
    _add_connection_options(psql_parser)
    _add_logging_options(psql_parser, "WARNING")
    psql_parser.add_argument(
        "psql_arguments",
        nargs=argparse.REMAINDER,
        metavar="-- PSQL_ARGUMENT",
        help='for example -- -c "SELECT count(*) FROM witnesses"',
    )

    generate_parser = command(
        "generate", generate.generate, "keep claimable blocks queued for the workers"
    )
    _add_strategy_options(generate_parser, default=None)
    generate_parser.add_argument(
        "--once",
        action="store_true",
        help="enqueue once and exit: up to the bound if one is given, else enough "
        "blocks to fill the queue",
    )
    generate_parser.add_argument(
        "--target-seconds",
        type=positive_seconds,
        default=60.0,
        help="aim for blocks that take this long at the workers' throughput "
        "(default 60)",
    )
    generate_parser.add_argument(
        "--queue-depth",
        type=positive_int,
        default=4,
        help="keep at least this many blocks claimable, and two per live worker "
        "(default 4)",
    )

    process_parser = command("process", process.process, "claim and compute blocks")
    _add_worker_options(process_parser, default_workers="1")
    process_parser.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="exit once no block is waiting to be claimed",
    )
    process_parser.add_argument(
        "--strategy",
        choices=strategy_names(),
        help="claim only blocks of this strategy",
    )
    _add_retry_options(process_parser)

    cleanup_parser = command(
        "cleanup", cleanup.cleanup, "fail blocks whose worker's lease expired"
    )
    cleanup_parser.add_argument(
        "--once", action="store_true", help="clean up once and exit"
    )
    cleanup_parser.add_argument(
        "--stale-after",
        type=non_negative_seconds,
        default=30.0,
        metavar="SECONDS",
        help="fail a block once its lease has been expired this long (default 30)",
    )
    cleanup_parser.add_argument(
        "--interval",
        type=positive_seconds,
        default=15.0,
        metavar="SECONDS",
        help="time between two clean-ups (default 15)",
    )
    _add_retry_options(cleanup_parser)

    status_parser = command(
        "status",
        status.status,
        "progress, blocks by state, best witness value and live workers",
        long_running=False,
    )
    status_parser.add_argument("--json", action="store_true", help="print JSON")

    export_parser = command(
        "export", export.export, "stored witness records as CSV", long_running=False
    )
    export_parser.add_argument(
        "--min-witness",
        type=decimal_number,
        metavar="W",
        help="only records whose witness value is at least W",
    )
    export_parser.add_argument(
        "--strategy", choices=strategy_names(), help="only records of this strategy"
    )
    export_parser.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="write to FILE (replaced whole, only once complete) instead of stdout",
    )

    run_parser = command(
        "run",
        run.run,
        "generator, janitor and workers on this machine, with live progress; on a "
        "private embedded PostgreSQL unless a database is given",
    )
    _add_strategy_options(run_parser, default="superabundant")
    _add_worker_options(run_parser, default_workers="one per core")
    run_parser.add_argument(
        "--target-seconds",
        type=positive_seconds,
        default=2.0,
        help="aim for blocks that take this long (default 2: short, so progress is "
        "live and no core waits long for the last block)",
    )
    run_parser.add_argument(
        "--no-progress",
        action="store_true",
        help="log progress lines instead of drawing progress bars (on a terminal the "
        "bars replace the INFO log lines; warnings and errors still show)",
    )
    _add_retry_options(run_parser)

    blocks_parser = commands.add_parser(
        "blocks",
        help="inspect and requeue blocks",
        description="Inspect and requeue blocks.",
    )
    blocks_commands = blocks_parser.add_subparsers(
        dest="blocks_command", metavar="ACTION", required=True
    )
    dead_parser = blocks_commands.add_parser(
        "dead", help="list DEAD blocks with their last error"
    )
    dead_parser.set_defaults(function=blocks.list_dead)
    requeue_parser = blocks_commands.add_parser(
        "requeue",
        help="make DEAD blocks claimable again",
        description="Make DEAD blocks claimable again, with their attempts reset.",
    )
    requeue_parser.set_defaults(function=blocks.requeue)
    requeue_target = requeue_parser.add_mutually_exclusive_group(required=True)
    requeue_target.add_argument(
        "block_ids", nargs="*", type=positive_int, default=[], metavar="BLOCK_ID"
    )
    requeue_target.add_argument("--all", action="store_true", help="every DEAD block")
    for sub in (dead_parser, requeue_parser):
        _add_connection_options(sub)
        _add_logging_options(sub, "WARNING")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    config.load_dotenv_file()
    parser = build_parser()
    args = parser.parse_args(argv)
    # argparse checks the choices of typed options only, not of defaults taken
    # from the environment.
    if args.log_level not in LOG_LEVELS:
        parser.error(f"RIEMANN_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    if args.log_format not in LOG_FORMATS:
        parser.error(f"RIEMANN_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    output.configure_logging(args.log_level, args.log_format)
    function: Command = args.function
    try:
        return function(args)
    except (
        StoreError,
        EmbeddedPostgresError,
        UsageError,
        InvalidIndexError,
        UnknownStrategyError,
    ) as problem:
        output.error(str(problem))
        return output.EXIT_FAILURE
    except BrokenPipeError:
        # The reader of our output went away (`riemann export | head`): not an error.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed pipe
        return output.EXIT_OK
    except (KeyboardInterrupt, StoppedError):
        output.error("interrupted")
        return output.EXIT_INTERRUPTED
    except Exception as bug:
        output.crash_report(bug)
        return 70
