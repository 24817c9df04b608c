"""Errors in how the command line was used, beyond what argparse can check."""


class UsageError(Exception):
    """Options that do not go together, said in one sentence."""
