"""Optional dependencies: which ``pip install 'mdn-snntorch[EXTRA]'`` brings which module.

``pip install mdn-snntorch`` gives the neurons (torch, snntorch, numpy). Everything else is an extra:
``data`` (the converters and spike files), ``pipeline`` (training, meta-neuron generation,
evaluation, figures), ``validation`` (the Brian2 cross-check), ``all`` (all three).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: top-level module -> the extra that installs it
EXTRA_OF: dict[str, str] = {
    "h5py": "data",
    "torchvision": "data",
    "tonic": "data",
    "soundfile": "data",
    "scipy": "data",
    "sklearn": "pipeline",
    "matplotlib": "pipeline",
    "tqdm": "pipeline",
    "brian2": "validation",
    "Cython": "validation",
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""

    def __init__(self, module: str, extra: str | None = None):
        extra = extra or EXTRA_OF.get(module.split(".")[0], "all")
        super().__init__(f"{module} is not installed; it comes with pip install 'mdn-snntorch[{extra}]'", name=module)
        self.extra = extra


def require(module: str, extra: str | None = None) -> ModuleType:
    """``import module``, or :class:`MissingExtraError` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or module.split(".")[0] != err.name.split(".")[0]:
            raise
        raise MissingExtraError(module, extra) from None


def missing_extra(err: BaseException) -> MissingExtraError | None:
    """``err`` as a :class:`MissingExtraError` when it is an import failure of an optional dependency."""
    if isinstance(err, MissingExtraError):
        return err
    if isinstance(err, ModuleNotFoundError) and err.name and err.name.split(".")[0] in EXTRA_OF:
        return MissingExtraError(err.name.split(".")[0])
    return None
