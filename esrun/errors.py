"""User-facing errors: anything a user can fix. The CLI prints ``esrun: error: <message>`` (one line) and exits 2."""


class UserError(Exception):
    """Base of every error caused by user input (config, arguments, files, cluster addresses)."""


class OptionError(UserError, ValueError):
    """A bad option value or name (also a ValueError, for callers that treat it as one)."""
