"""The long-running jobs: generator, worker, janitor, and what they share."""
