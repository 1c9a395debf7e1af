"""The errors a user can cause and fix, in a module that imports nothing heavy.

Each stage turns a `UserError` into one line on stderr and exit code 2 (`ferx.cli`); any other
exception is a bug and keeps its traceback. Modules define their own subclasses next to the
code that raises them; `cli` only needs this base, so a stage pays for no import it does not use.
"""


class UserError(ValueError):
    """Bad input, a missing file or a checkpoint that does not fit: the message says which."""
