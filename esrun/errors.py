"""User-facing errors: anything a user can fix. The CLI prints ``esrun: error: <message>`` (one line) and exits 2."""


class UserError(Exception):
    """Base of every error caused by user input (config, arguments, files, cluster addresses)."""


class OptionError(UserError, ValueError):
    """A bad option value or name (also a ValueError, for callers that treat it as one)."""


class ConfigError(UserError, ValueError):
    """A user mistake in a config or an override; its message is one line meant for the console (line breaks
    in quoted user text are shown as \\n).

    It lives here, not in ``esrun.config``, so that layers below config (policies, tasks) can raise it without
    importing config (which would make an import cycle: config -> tasks -> policies -> config).
    """

    def __init__(self, message: str):
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))
