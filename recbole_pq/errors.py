"""Errors for bad user input; the CLI prints their message without a traceback."""


class ConfigError(ValueError):
    """A config key, value or name that is not allowed; the message names it and what is."""


class DatasetNotFoundError(FileNotFoundError):
    """A data set that is known but not prepared, or not known at all."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, or not one of ours; the message names the file."""


USER_ERRORS = (ConfigError, DatasetNotFoundError, CheckpointError)
