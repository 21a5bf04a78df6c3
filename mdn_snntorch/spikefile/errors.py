"""The errors of spike files: a bad file (exit code 2) and a file changed under a running job (exit code 1)."""

from __future__ import annotations


class SpikeFileError(ValueError):
    """A spike file that is missing, not HDF5, of another format or version, inconsistent, or beyond a limit."""


class InputChangedError(SpikeFileError):
    """The spike file of a running job was replaced or modified: the run stops (exit code 1)."""

    exit_code = 1
