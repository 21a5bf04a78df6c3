r"""The neuron equations, written once; every simulator derives its form from here.

2nd-order meta-dynamic neuron (paper Eq. 2, dimensionless)::

    dV/dt = V^2 - V - U + I          I = sigmoid(W x) in (0, 1)
    dU/dt = theta_a * (theta_b * V - U)
    if V > V_th:  S = 1,  V <- theta_c,  U <- U + theta_d

1st-order baseline (paper Eq. 3, read as a per-step map)::

    V(t+1) = g * V(t) + I(t)         if V > V_th: S = 1, V <- V_reset

The right-hand sides below are plain arithmetic, so the same function evaluates
on floats, numpy arrays, torch tensors and sympy symbols. The Brian2 model strings
(:func:`brian2_mdn_model`, :func:`brian2_first_order_model`) are produced by
calling them on sympy symbols, never typed by hand.
"""

from __future__ import annotations

from typing import Any

#: Initial state of the 2nd-order neuron (paper §4.2; docs/model.md#discretisation).
V0 = 0.0
U0 = 0.08
#: Firing threshold of both neuron orders (paper §3.2, §3.4).
V_TH = 0.5


def dv_dt(v: Any, u: Any, current: Any) -> Any:
    """dV/dt = V^2 - V - U + I."""
    return v * v - v - u + current


def du_dt(v: Any, u: Any, theta_a: Any, theta_b: Any) -> Any:
    """dU/dt = theta_a * (theta_b * V - U)."""
    return theta_a * (theta_b * v - u)


def first_order_map(v: Any, current: Any, decay: Any) -> Any:
    """V(t+1) = g V(t) + I(t): the 1st-order neuron's update for one step."""
    return decay * v + current


def _symbols(names: str):
    import sympy

    return sympy.symbols(names, real=True)


def brian2_mdn_model() -> dict[str, str]:
    """Brian2 ``NeuronGroup`` arguments for the MDN, derived from :func:`dv_dt` and :func:`du_dt`.

    One model time unit is one Brian2 second, so ``dt = 1 * second`` is exact.
    Per-neuron ``theta_*`` and ``v_th`` are group parameters; ``I`` is a subexpression
    the caller defines (e.g. from a ``TimedArray``).
    """
    import sympy

    v, u, current, a, b = _symbols("v u I theta_a theta_b")
    dv = sympy.sstr(dv_dt(v, u, current))
    du = sympy.sstr(du_dt(v, u, a, b))
    return {
        "model": (
            f"dv/dt = ({dv}) / second : 1\n"
            f"du/dt = ({du}) / second : 1\n"
            "theta_a : 1\ntheta_b : 1\ntheta_c : 1\ntheta_d : 1\nv_th : 1"
        ),
        "threshold": "v > v_th",
        "reset": "v = theta_c\nu += theta_d",
        "method": "euler",
    }


def brian2_first_order_model() -> dict[str, str]:
    """Brian2 arguments for the 1st-order neuron: the map of :func:`first_order_map` applied
    once per step (a ``run_regularly`` update, ``when='groups'``), then threshold and reset."""
    import sympy

    v, current, g = _symbols("v I decay")
    return {
        "model": "v : 1\ndecay : 1\nv_th : 1\nv_reset : 1",
        "update": f"v = {sympy.sstr(first_order_map(v, current, g))}",
        "when": "groups",
        "threshold": "v > v_th",
        "reset": "v = v_reset",
    }
