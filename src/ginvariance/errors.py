"""The exception hierarchy of ginvariance: library code raises these, and only the command
line turns them into a one-line message and exit status 2."""

from __future__ import annotations


class GinvarianceError(Exception):
    """Base class of every error that ginvariance raises on bad input."""


class DataError(GinvarianceError, ValueError):
    """Input data is missing, unreadable, of the wrong shape or dtype, or not finite."""


class LabelError(DataError):
    """Labels are out of range, of the wrong dtype, or do not match the inputs in length."""


class GroupError(GinvarianceError, ValueError):
    """Unknown group name, or a group definition that is not a group."""


class GroupActionError(GroupError):
    """The group cannot act on inputs of this shape (for example c4 on a non-square image)."""


class ModelError(GinvarianceError, ValueError):
    """A model cannot be built or imported, or returns something other than (B, K) logits."""


class CheckpointError(GinvarianceError, ValueError):
    """A checkpoint is missing, unsafe, corrupt, or does not match the model or configuration."""


class ConfigError(GinvarianceError, ValueError):
    """An option has a value that is out of range or unknown (mode, lambda, chunk size, ...)."""


class DeviceError(ConfigError):
    """A device that does not exist or is not available, a precision it cannot run, or a
    model whose parameters sit on several devices."""


class OutputError(GinvarianceError, OSError):
    """An output folder or file cannot be written, or would overwrite other results."""


class MissingExtraError(GinvarianceError, ImportError):
    """An optional piece needs a package that is not installed; the message names the extra."""


class GinvarianceWarning(UserWarning):
    """Base class of the warnings ginvariance issues about a result it computed."""


class UndefinedMeasureWarning(GinvarianceWarning):
    """A measure is undefined for this model and data, and is reported as ``None``.

    For example ``sis`` of a model whose input gradient is zero on every input.
    """


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "GinvarianceError",
    "GinvarianceWarning",
    "GroupActionError",
    "GroupError",
    "LabelError",
    "MissingExtraError",
    "ModelError",
    "OutputError",
    "UndefinedMeasureWarning",
]
