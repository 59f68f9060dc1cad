"""The one-machine demo behind ``make demo``."""
