"""Errors a user can cause. The CLI prints their message and exits non-zero, with no traceback."""

from __future__ import annotations

__all__ = ["ConfigError", "DatasetMissingError", "RecordingError", "SpecError", "StorageError",
           "UserError"]


class UserError(Exception):
    """Base of every error caused by the user's input or environment, not by a bug."""

    exit_code = 2


class ConfigError(UserError):
    """A bad run configuration: unknown key, bad type, unknown trick level."""


class SpecError(UserError):
    """A bad study spec; the message names the file and the key."""


class DatasetMissingError(UserError):
    """A real dataset is not on disk; the message names the path and how to get it."""


class StorageError(UserError):
    """The results database cannot be used as asked (schema version, spec changed, ...)."""


class RecordingError(UserError):
    """A recording on disk cannot be used (malformed, outside the sensor, mislabelled); the
    message names the file."""
