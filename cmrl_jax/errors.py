"""The exception every user-facing refusal raises (imports nothing, so every module may)."""


class ConfigError(ValueError):
    """A user-facing configuration problem (reported in one line, exit status 2)."""
