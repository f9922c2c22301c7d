"""CLI verbs for data."""


def register(subparsers) -> None:
    """Add this area's verbs to the ``armworld`` parser."""
