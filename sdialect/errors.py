"""The errors the command line turns into one sentence and a non-zero exit."""

from golden.blocks import InputError
from golden.formats import FormatError
from golden.packing import CheckpointError


class UsageError(ValueError):
    """A bad command-line argument or input file, described in one sentence."""


#: Exceptions whose message is shown to the user as is (no traceback), exit status 2.
USER_ERRORS = (UsageError, InputError, FormatError, CheckpointError)
