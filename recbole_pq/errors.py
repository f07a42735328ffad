"""Errors for bad user input; the CLI prints their message without a traceback."""


class ConfigError(ValueError):
    """A config key, value or name that is not allowed; the message names it and what is."""


class DatasetNotFoundError(FileNotFoundError):
    """A data set that is known but not prepared, or not known at all."""


USER_ERRORS = (ConfigError, DatasetNotFoundError)
