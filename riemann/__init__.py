"""A distributed search for counterexamples to Robin's inequality."""

__version__ = "0.1.0"
