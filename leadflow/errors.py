"""The failures a user can act on. Their message is one line saying what failed, where, and
what to do; the command line prints it as is (`error: …`) and exits with `exit_code`.
Anything else that fails is a bug, named as such."""


class UserError(Exception):
    """Bad input, configuration or state, or a run refused: the message says which."""

    exit_code = 1


class DayRangeError(UserError, ValueError):
    """A range of days that ends before it starts."""
