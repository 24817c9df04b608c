"""`riemann blocks dead` and `riemann blocks requeue`."""

import argparse

from riemann.cli import output
from riemann.cli.database import opened_store


def list_dead(args: argparse.Namespace) -> int:
    with opened_store(args, create=False) as store:
        dead = store.dead_blocks()
    if not dead:
        output.say("no DEAD blocks")
    for block in dead:
        output.say(
            f"block {block.block_id} ({block.strategy} {block.start_index}.."
            f"{block.end_index}) after {block.attempts} attempts: {block.last_error}"
        )
    return output.EXIT_OK


def requeue(args: argparse.Namespace) -> int:
    with opened_store(args, create=False) as store:
        requeued = store.requeue_dead(None if args.all else args.block_ids)
    if not args.all:
        missing = sorted(set(args.block_ids) - set(requeued))
        if missing:
            output.error(
                "not DEAD, so not requeued: " + ", ".join(f"block {b}" for b in missing)
            )
            return output.EXIT_FAILURE
    output.say(f"{len(requeued)} block(s) requeued")
    return output.EXIT_OK
