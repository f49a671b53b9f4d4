"""The one exception type for mistakes a user can make and fix."""


class UserError(Exception):
    """A bad value a user supplied; its message names the value and what would be valid.

    ``scripts/render.py`` prints the message alone and exits non-zero, keeping tracebacks for bugs.
    """
