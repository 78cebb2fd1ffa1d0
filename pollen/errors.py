"""The one exception base of the `pollen` package. Subclasses build their own message."""


class PollenError(Exception):
    """Base of every error Pollen raises on purpose (bad input, chain failures, ...)."""
