"""Meta-neuron presets (paper Table 2) and meta-neuron libraries saved as versioned JSON.

=========  =======  =====  ======  =====  =============================================
preset     theta_a  theta_b theta_c theta_d description
=========  =======  =====  ======  =====  =============================================
2-FS        0.060   0.219  -0.065  0.003  spatial, fast spiking, near-linear rate
2-RS        0.060   0.219  -0.010  0.050  spatial, regular spiking
2-SDS      -0.009   0.246  -0.058  0.065  temporal, strong spike-driven depression
2-WDS       0.005   0.158  -0.058  0.065  temporal, weak depression
init        0.02    0.2     0.0    0.08   the learnable initial values (paper §4.2)
1st-order   g = 0.8, V_th = 0.5, V_reset = 0 (paper Eq. 3)
1st-order-0.2  g = 0.2: the decay in the paper authors' published code
=========  =======  =====  ======  =====  =============================================
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdn_snntorch import names as name_rules
from mdn_snntorch.atomic import atomic_write

LIBRARY_FORMAT = "mdn-meta-neuron-library"
LIBRARY_VERSION = 1
#: the largest library file read (a library of 10^6 neurons as :func:`save_library` writes it takes ~200 MB)
MAX_LIBRARY_BYTES = 256 << 20
#: the most neurons a library may hold
MAX_LIBRARY_NEURONS = 1 << 20


@dataclass(frozen=True)
class MetaNeuron:
    """A frozen neuron type: 2nd order with ``theta = (a, b, c, d)``, or 1st order with ``decay``."""

    name: str
    order: int
    theta: tuple[float, float, float, float] | None = None
    decay: float | None = None
    description: str = ""
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.order == 2:
            if self.theta is None or len(self.theta) != 4:
                raise ValueError(f"meta neuron {self.name!r}: order 2 needs theta = (a, b, c, d), got {self.theta!r}")
            object.__setattr__(self, "theta", tuple(map(float, self.theta)))
        elif self.order == 1:
            if self.decay is None:
                raise ValueError(f"meta neuron {self.name!r}: order 1 needs a decay")
            object.__setattr__(self, "decay", float(self.decay))
        else:
            raise ValueError(f"meta neuron {self.name!r}: order must be 1 or 2, got {self.order!r}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "order": self.order}
        if self.order == 2:
            d["theta"] = list(self.theta)
        else:
            d["decay"] = self.decay
        d["description"] = self.description
        d["provenance"] = self.provenance
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "meta neuron") -> MetaNeuron:
        """A neuron from its :meth:`to_dict` form; ``ValueError`` naming ``where`` and the field for anything
        of the wrong type (a name that is not a non-empty string, an order other than 1 or 2, theta not four
        finite numbers, a decay not a finite number)."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected an object with name, order and theta or decay, got {type(d).__name__}")
        name, order = d.get("name"), d.get("order")
        if name is None or order is None:
            raise ValueError(f"{where}: missing field {'name' if name is None else 'order'!r}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: field 'name' must be a non-empty string, got {name!r}")
        if type(order) is not int or order not in (1, 2):
            raise ValueError(f"{where} ({name!r}): field 'order' must be 1 or 2, got {order!r}")
        needed = "theta" if order == 2 else "decay"
        value = d.get(needed)
        if value is None:
            raise ValueError(f"{where} ({name!r}): missing field {needed!r} for an order-{order} neuron")
        if order == 2:
            values = value if isinstance(value, (list, tuple)) and len(value) == 4 else None
        else:
            values = (value,)
        if values is None or not all(_finite_number(v) for v in values):
            expected = "a list of four finite numbers (a, b, c, d)" if order == 2 else "a finite number"
            raise ValueError(f"{where} ({name!r}): field {needed!r} must be {expected}, got {value!r}")
        description, provenance = d.get("description", ""), d.get("provenance", {})
        if not isinstance(description, str) or not isinstance(provenance, dict):
            key, kind = ("description", str) if not isinstance(description, str) else ("provenance", dict)
            raise ValueError(f"{where} ({name!r}): field {key!r} must be a {kind.__name__}, got {type(d[key]).__name__}")
        return cls(
            name, order, tuple(values) if order == 2 else None, value if order == 1 else None, description, dict(provenance)
        )


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_PAPER = {"source": "paper Table 2"}
PRESETS: dict[str, MetaNeuron] = {
    n.name: n
    for n in (
        MetaNeuron(
            "2-FS",
            2,
            (0.060, 0.219, -0.065, 0.003),
            description="spatial, fast spiking, near-linear rate vs input",
            provenance=_PAPER,
        ),
        MetaNeuron(
            "2-RS", 2, (0.060, 0.219, -0.010, 0.050), description="spatial, regular spiking, weaker linearity", provenance=_PAPER
        ),
        MetaNeuron(
            "2-SDS",
            2,
            (-0.009, 0.246, -0.058, 0.065),
            description="temporal, first spikes strongly depress later ones",
            provenance=_PAPER,
        ),
        MetaNeuron("2-WDS", 2, (0.005, 0.158, -0.058, 0.065), description="temporal, weaker depression", provenance=_PAPER),
        MetaNeuron(
            "init", 2, (0.02, 0.2, 0.0, 0.08), description="learnable initial values", provenance={"source": "paper §4.2"}
        ),
        MetaNeuron(
            "1st-order",
            1,
            decay=0.8,
            description="LIF baseline: V' = 0.8 V + I, V_th 0.5, reset 0",
            provenance={"source": "paper Eq. 3"},
        ),
        MetaNeuron(
            "1st-order-0.2",
            1,
            decay=0.2,
            description="the 1st-order neuron as the paper authors' published code has it: V' = 0.2 V + I",
            provenance={"source": "the authors' published code (docs/model.md#the-authors-published-code)"},
        ),
    )
}
PAPER_NEURONS = ("2-FS", "2-RS", "2-SDS", "2-WDS", "1st-order")


def names() -> list[str]:
    """Names of the built-in presets."""
    return list(PRESETS)


def get(name: str) -> MetaNeuron:
    """The preset ``name``; ``KeyError`` listing the valid names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown meta-neuron preset {name!r}; valid names: {', '.join(PRESETS)}") from None


@dataclass
class MetaNeuronLibrary:
    """A set of generated meta neurons plus where they came from."""

    neurons: list[MetaNeuron]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.neurons]

    def get(self, name: str) -> MetaNeuron:
        for n in self.neurons:
            if n.name == name:
                return n
        names = self.names
        more = f" and {len(names) - 20} more" if len(names) > 20 else ""
        raise KeyError(f"no meta neuron {name!r} in this library; it has: {', '.join(names[:20])}{more}")


def save_library(path: str | os.PathLike, neurons: Iterable[MetaNeuron], provenance: dict[str, Any] | None = None) -> Path:
    """Write a library JSON atomically (temporary file, then rename)."""
    path = Path(path)
    doc = {
        "format": LIBRARY_FORMAT,
        "version": LIBRARY_VERSION,
        "provenance": provenance or {},
        "neurons": [n.to_dict() for n in neurons],
    }
    atomic_write(path, json.dumps(doc, indent=2))
    return path


def _read_library_text(path: Path) -> str:
    """The text of the library file ``path``, read only when it is a regular file of at most
    :data:`MAX_LIBRARY_BYTES` (opened without blocking: a FIFO is refused, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"meta-neuron library {path} does not exist") from None
    except OSError as e:
        raise ValueError(f"meta-neuron library {path} cannot be read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"meta-neuron library {path} is a directory, not a JSON file")
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"meta-neuron library {path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        if st.st_size > MAX_LIBRARY_BYTES:
            raise ValueError(
                f"meta-neuron library {path} holds {st.st_size} bytes, more than a library may ({MAX_LIBRARY_BYTES})"
            )
        try:
            data = f.read(MAX_LIBRARY_BYTES + 1)
        except OSError as e:
            raise ValueError(f"meta-neuron library {path} cannot be read: {e.strerror or e}") from None
    if len(data) > MAX_LIBRARY_BYTES:
        raise ValueError(f"meta-neuron library {path} grew past {MAX_LIBRARY_BYTES} bytes while it was read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"meta-neuron library {path} is not a text (UTF-8 JSON) file") from None


def _named(neuron: MetaNeuron, where: str) -> MetaNeuron:
    """``neuron`` with its name in NFKC form; ``ValueError`` naming ``where`` for a name that is refused
    (:func:`mdn_snntorch.names.refusal`: invisible characters, mixed scripts, a look-alike of a preset)."""
    name = name_rules.normal(neuron.name)
    problem = name_rules.refusal(name, PRESETS)
    if problem:
        raise ValueError(f"{where} ({neuron.name!r}): {problem}; refused")
    return neuron if name == neuron.name else dataclasses.replace(neuron, name=name)


def load_library(path: str | os.PathLike) -> MetaNeuronLibrary:
    """Read a library JSON; ``ValueError`` naming the file (and the neuron) for a wrong format, version or
    field, a refused name, a name used twice (after NFKC normalisation), or a file over the limits
    (:data:`MAX_LIBRARY_BYTES`, :data:`MAX_LIBRARY_NEURONS`). Linear in the number of neurons."""
    path = Path(path)
    try:
        doc = json.loads(_read_library_text(path))
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"meta-neuron library {path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != LIBRARY_FORMAT:
        raise ValueError(f"{path}: not a meta-neuron library (field 'format' must be {LIBRARY_FORMAT!r})")
    if doc.get("version") != LIBRARY_VERSION:
        raise ValueError(f"{path}: library version {doc.get('version')!r} is not supported (expected {LIBRARY_VERSION})")
    if not isinstance(doc.get("neurons"), list):
        raise ValueError(f"{path}: missing field 'neurons' (a list of meta neurons)")
    if len(doc["neurons"]) > MAX_LIBRARY_NEURONS:
        raise ValueError(f"{path}: {len(doc['neurons'])} neurons, more than a library may hold ({MAX_LIBRARY_NEURONS})")
    at = f"{path}: neurons"
    neurons = [_named(MetaNeuron.from_dict(d, f"{at}[{i}]"), f"{at}[{i}]") for i, d in enumerate(doc["neurons"])]
    counts = Counter(n.name for n in neurons)
    twice = sorted(name for name, count in counts.items() if count > 1)
    if twice:
        raise ValueError(f"{path}: neuron name(s) {', '.join(map(repr, twice[:10]))} appear more than once")
    if not isinstance(doc.get("provenance", {}), dict):
        raise ValueError(f"{path}: field 'provenance' must be an object")
    return MetaNeuronLibrary(neurons, dict(doc.get("provenance", {})))
