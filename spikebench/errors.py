"""The user's mistakes, one family for the whole suite: every part may raise them, so this module imports nothing.

A `UserError` (a bad config value, a missing or unreadable file, a checkpoint of another network) is printed by the
entry points as one line, `error: …`, with exit status 2; in a study it stops the study, since every trial would
fail alike. Any other exception is a bug or a failure of the machine and keeps its traceback (in a study: the
trial fails, with the traceback in the trial's log). None of them is a ValueError, so that a ValueError raised by
a bug deep in the code is never mistaken for one.
"""


class UserError(Exception):
    """A mistake of the user's; the message says what to do."""


class ConfigError(UserError):
    """A bad config: unknown key or group choice, a value of the wrong type or out of range."""


class DataError(UserError):
    """A data file is missing, corrupt or does not fit the config; the message says what to do."""
