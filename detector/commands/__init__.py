"""Top-level CLI commands, one module each."""
