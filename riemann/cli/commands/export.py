"""`riemann export`: stored witness records as CSV, in the contract's column order."""

import argparse
import csv
import os
import sys
import tempfile
from collections.abc import Iterable
from contextlib import closing
from typing import TextIO

from riemann.cli import output
from riemann.cli.database import opened_store
from riemann.store import StoredWitness

COLUMNS = [
    "n",
    "divisor_sum",
    "witness_value",
    "log_n",
    "strategy",
    "level",
    "exponents",
    "block_id",
]


def write_csv(records: Iterable[StoredWitness], stream: TextIO) -> int:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for record in records:
        writer.writerow(
            [
                record.n,
                record.divisor_sum,
                record.witness_value,
                record.log_n,
                record.strategy,
                "" if record.level is None else record.level,
                ""
                if record.exponents is None
                else " ".join(map(str, record.exponents)),
                record.block_id,
            ]
        )
        count += 1
    return count


def export(args: argparse.Namespace) -> int:
    with (
        opened_store(args, create=False) as store,
        closing(store.witnesses(args.min_witness, args.strategy)) as records,
    ):
        if args.csv is None:
            try:
                write_csv(records, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:
                raise  # the reader went away: main() treats that as done
            except OSError as problem:
                output.error(f"cannot write to standard output: {problem.strerror}")
                return output.EXIT_FAILURE
            return output.EXIT_OK
        target = args.csv.resolve()
        # Written beside the target and renamed over it, so a reader never sees half.
        try:
            handle, temporary = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
            )
        except OSError as problem:
            output.error(f"cannot write {args.csv}: {problem.strerror}")
            return output.EXIT_FAILURE
        try:
            with os.fdopen(handle, "w", newline="") as stream:
                count = write_csv(records, stream)
            os.replace(temporary, target)
        except OSError as problem:
            os.unlink(temporary)
            output.error(f"cannot write {args.csv}: {problem.strerror}")
            return output.EXIT_FAILURE
        except BaseException:
            os.unlink(temporary)
            raise
    output.say(f"{count} record(s) written to {target}", stream=sys.stderr)
    return output.EXIT_OK
