"""CLI verbs for envs."""


def register(subparsers) -> None:
    """Add this area's verbs to the ``armworld`` parser."""
