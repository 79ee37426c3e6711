"""Exceptions the toolkit raises for bad input.

Every error a user can cause (a typo in a config, a corrupt image, a checkpoint of the wrong
architecture) is one of these, with a message that names the offending key, file or value, so the
command line can print it without a traceback.
"""


class I2IError(Exception):
    """Base class for errors caused by user input rather than by a bug."""


class ConfigError(I2IError):
    """A configuration value or key is invalid."""


class DataError(I2IError):
    """An input file or folder is missing, unreadable or inconsistent."""


class CheckpointError(I2IError):
    """A checkpoint or exported generator cannot be used as asked."""
