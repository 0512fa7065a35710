"""The errors the command line turns into one sentence and a non-zero exit (defined in ``golden.errors``)."""

from golden.errors import USER_ERRORS, UsageError

__all__ = ["USER_ERRORS", "UsageError"]
