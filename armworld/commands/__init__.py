"""CLI verbs, one module per area; see armworld/cli.py."""
