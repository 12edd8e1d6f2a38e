"""The error a user can cause and fix (a bad argument, a missing --user): the commands print it as one
line and exit non-zero, never a traceback (SPEC §2)."""


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""
