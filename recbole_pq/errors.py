"""Errors for bad user input; the CLI prints their message without a traceback."""


class ConfigError(ValueError):
    """A config key, value or name that is not allowed; the message names it and what is."""


class DatasetNotFoundError(FileNotFoundError):
    """A data set that is known but not prepared, or not known at all."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, or not one of ours; the message names the file."""


class DataFileError(ValueError):
    """A data file RecBole would misread; the message names the file, the line and what is expected."""


USER_ERRORS = (ConfigError, DatasetNotFoundError, CheckpointError, DataFileError)
