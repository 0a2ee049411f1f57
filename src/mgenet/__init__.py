"""mgenet: a reproducible pipeline for MGENet human-behaviour video anomaly detection."""

__version__ = "0.1.0"


class MgenetError(Exception):
    """An error a user can fix: bad input, a missing file, an invalid config.

    The CLI prints its message (which names the file and the fix) without a traceback.
    """
