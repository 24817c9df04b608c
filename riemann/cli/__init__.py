"""The `riemann` command line: argument parsing, configuration and output."""
