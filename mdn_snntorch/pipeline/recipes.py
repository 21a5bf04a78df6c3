"""Training recipes: the training settings of each data set, the paper's Table 1 (plus eta_D from
§4.3), the project's settings for the embedded ``digits`` tasks, and each data set's kind.

``lr`` is eta_W (synaptic weights), ``lr_theta`` eta_D (dynamic parameters, used only when theta is
learnable). The paper gives eta_D for MNIST (1e-3) and TIDigits (1e-4) only; elsewhere it is eta_W.
The input and output sizes are not settings: they come from the data file. ``spoken-digits`` (the
offline stand-in for TIDIGITS, synthesised with espeak-ng) takes TIDigits' row.

:data:`KINDS` sorts the data sets into the paper's spatial tasks (MNIST, Fashion-MNIST, NETtalk,
CIFAR-10; here also the whole-image ``digits``) and temporal tasks (TIDigits, TIMIT, N-MNIST; here also
``digits-rows`` and ``spoken-digits``), the groups of the paper's Fig. 8.
"""

from __future__ import annotations

from typing import Any

#: name -> training settings (``mdn train --recipe NAME``)
RECIPES: dict[str, dict[str, Any]] = {
    "mnist": dict(hidden=500, batch_size=100, epochs=20, lr=1e-3, lr_theta=1e-3),
    "fashion-mnist": dict(hidden=500, batch_size=100, epochs=20, lr=1e-3, lr_theta=1e-3),
    "nettalk": dict(hidden=500, batch_size=5, epochs=20, lr=1e-3, lr_theta=1e-3),
    "cifar10": dict(hidden=1500, batch_size=100, epochs=20, lr=1e-4, lr_theta=1e-4),
    "tidigits": dict(hidden=500, batch_size=10, epochs=30, lr=1e-2, lr_theta=1e-4),
    "timit": dict(hidden=500, batch_size=32, epochs=20, lr=1e-3, lr_theta=1e-3),
    "nmnist": dict(hidden=500, batch_size=100, epochs=20, lr=1e-3, lr_theta=1e-3),
    # not in the paper: the embedded scikit-learn digits (1797 images), whole image or row by row
    "digits": dict(hidden=200, batch_size=50, epochs=20, lr=3e-3, lr_theta=1e-3),
    "digits-rows": dict(hidden=200, batch_size=50, epochs=20, lr=3e-3, lr_theta=1e-3),
    # not in the paper: spoken digits synthesised with espeak-ng, TIDigits' settings
    "spoken-digits": dict(hidden=500, batch_size=10, epochs=30, lr=1e-2, lr_theta=1e-4),
}

#: recipe name -> "spatial" or "temporal" (the task groups of the paper's Fig. 8)
KINDS: dict[str, str] = {
    "mnist": "spatial",
    "fashion-mnist": "spatial",
    "nettalk": "spatial",
    "cifar10": "spatial",
    "digits": "spatial",
    "tidigits": "temporal",
    "timit": "temporal",
    "nmnist": "temporal",
    "digits-rows": "temporal",
    "spoken-digits": "temporal",
}

_ALIASES = {
    "f-mnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "n-mnist": "nmnist",
    "timit-gender": "timit",
}


def canonical(name: str) -> str | None:
    """The recipe name of a data-set name (case and common spellings ignored), or None."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    return key if key in RECIPES else None


def settings(name: str) -> dict[str, Any]:
    """The settings of recipe ``name``; ``KeyError`` listing the valid names otherwise."""
    key = canonical(name)
    if key is None:
        raise KeyError(f"unknown training recipe {name!r}; valid recipes: {', '.join(RECIPES)}")
    return dict(RECIPES[key])


def kind(name: str) -> str | None:
    """``"spatial"`` or ``"temporal"``: the kind of data set ``name`` (any spelling :func:`canonical` knows), or None."""
    key = canonical(name)
    return KINDS.get(key) if key else None
