"""The errors every layer may raise for bad input, and which the command line shows as one sentence.

They live here, at the bottom of the stack, so that the layers above golden (``evaluation``,
``kernels``, ``rtl_gen``, ``golden.dit``) can raise them without importing the command line.
"""

from .blocks import InputError
from .formats import FormatError
from .packing import CheckpointError


class UsageError(ValueError):
    """A bad command-line argument or input file, described in one sentence."""


#: Exceptions whose message is shown to the user as is (no traceback), exit status 2.
USER_ERRORS = (UsageError, InputError, FormatError, CheckpointError)
