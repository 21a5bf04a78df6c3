r"""Network replay: a trained :class:`~mdn_snntorch.models.ThreeLayerSNN` rebuilt in Brian2.

Brian2 network (one time step of the model = ``dt`` Brian2 seconds, all samples back to back)::

    input   NeuronGroup(D):  x = spikes(t, i)            (TimedArray of the test spikes, 'start')
    hidden  NeuronGroup(H):  meta-neuron equations with  I = 1 / (1 + exp(-(syn + bias)))
    output  NeuronGroup(K):  the same, its own neuron type and theta
    Synapses(input, hidden): syn_post = w * x_pre (summed),  w = fc1.weight
    Synapses(hidden, output): syn_post = w * s_pre (summed), w = fc2.weight, s = 1 in the step a
                              hidden neuron fired (set by its reset, cleared at 'start')

Per-neuron theta (learned or frozen) are group parameters; ``bias`` holds the Linear biases. The
hidden layer runs in Brian2's usual slots (summed input -> state update -> threshold -> reset); the
output layer's summed input, update, threshold and reset are moved to the ``after_resets`` slot, so it
sees the hidden spikes of the same step, as ``ThreeLayerSNN.forward`` does. A ``run_regularly`` every
``T`` steps puts the state back to its initial values at the start of each sample.

The prediction is the output neuron with the highest spike count (lowest index on ties, like
:func:`mdn_snntorch.loss.predict`), or with bit-vector targets the nearest code.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mdn_snntorch.equations import brian2_first_order_model, brian2_mdn_model
from mdn_snntorch.neurons.first_order import FirstOrder
from mdn_snntorch.neurons.mdn import MDN
from mdn_snntorch.pipeline.loss import predict
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from validation.targets import use_target

SIGMOID_CURRENT = "I = 1 / (1 + exp(-(syn + bias))) : 1"


def _layer_parameters(neuron, n: int, where: str) -> dict:
    """Per-neuron float64 parameters of one layer, after checking Brian2 can express its options."""
    if getattr(neuron, "inhibition", False):
        raise ValueError(f"{where}: network replay does not support inhibition=True")
    if float(neuron.graded_spikes_factor) != 1.0:
        raise ValueError(f"{where}: network replay supports graded_spikes_factor=1 only")
    if getattr(neuron, "state_quant", False):
        raise ValueError(f"{where}: network replay does not support state_quant")
    if not neuron.input_sigmoid:
        raise ValueError(f"{where}: network replay expects the paper's sigmoid input current (input_sigmoid=True)")

    def per_neuron(t) -> np.ndarray:
        return np.broadcast_to(torch.as_tensor(t).detach().double().cpu().numpy(), (n,)).copy()

    params = {"v_th": per_neuron(neuron.threshold)}
    if isinstance(neuron, MDN):
        if neuron.substeps != 1:
            raise ValueError(f"{where}: network replay supports substeps=1 only, the model has substeps={neuron.substeps}")
        params.update(order=2, dt=neuron.dt, v0=neuron.v0, u0=neuron.u0)
        params.update({name: per_neuron(getattr(neuron, name)) for name in ("theta_a", "theta_b", "theta_c", "theta_d")})
    elif isinstance(neuron, FirstOrder):
        params.update(order=1, dt=None, decay=per_neuron(neuron.decay), v_reset=per_neuron(neuron.reset_value))
    else:
        raise TypeError(f"{where}: cannot replay a {type(neuron).__name__} in Brian2")
    return params


def _neuron_group(params: dict, n: int, dt: float, steps_per_sample: int):
    """A layer whose current is the sigmoid of its summed synaptic input plus bias."""
    import brian2 as b2

    extra = f"\n{SIGMOID_CURRENT}\nsyn : 1\nbias : 1\ns : 1"
    if params["order"] == 2:
        m = brian2_mdn_model()
        group = b2.NeuronGroup(
            n, m["model"] + extra, threshold=m["threshold"], reset=m["reset"] + "\ns = 1", method=m["method"], dt=dt * b2.second
        )
        for name in ("theta_a", "theta_b", "theta_c", "theta_d"):
            setattr(group, name, params[name])
        restart = f"v = {params['v0']!r}\nu = {params['u0']!r}"
        update = group.state_updater
    else:
        m = brian2_first_order_model()
        group = b2.NeuronGroup(n, m["model"] + extra, threshold=m["threshold"], reset=m["reset"] + "\ns = 1", dt=dt * b2.second)
        update = group.run_regularly(m["update"], when=m["when"])
        group.decay = params["decay"]
        group.v_reset = params["v_reset"]
        restart = "v = 0"
    group.v_th = params["v_th"]
    group.run_regularly(restart, dt=steps_per_sample * dt * b2.second, when="start", order=-1)
    group.run_regularly("s = 0", when="start")
    return group, update


def _dense_synapses(pre, post, weight: np.ndarray, pre_variable: str):
    """All-to-all synapses summing ``w * pre_variable`` into ``post.syn``; ``weight`` is ``[post, pre]``."""
    import brian2 as b2

    syn = b2.Synapses(pre, post, model=f"w : 1\nsyn_post = w * {pre_variable}_pre : 1 (summed)", dt=post.clock.dt)
    syn.connect()
    syn.w[:] = weight[np.asarray(syn.j[:]), np.asarray(syn.i[:])]
    return syn


def brian2_counts(model: ThreeLayerSNN, spikes: np.ndarray, target: str = "numpy", *, cache_root=None) -> np.ndarray:
    """Output spike counts ``[S, K]`` of ``model`` rebuilt in Brian2, for input spikes ``[S, T, D]``."""
    import brian2 as b2

    samples, steps, n_in = spikes.shape
    hidden_p = _layer_parameters(model.hidden, model.n_hidden, "hidden layer")
    output_p = _layer_parameters(model.output, model.n_out, "output layer")
    dts = {p["dt"] for p in (hidden_p, output_p) if p["dt"] is not None}
    if len(dts) > 1:
        raise ValueError(f"hidden and output layers have different dt {sorted(dts)}; network replay needs one clock")
    dt = dts.pop() if dts else 1.0
    weights = [layer.weight.detach().double().cpu().numpy() for layer in (model.fc1, model.fc2)]
    biases = [layer.bias.detach().double().cpu().numpy() if layer.bias is not None else 0.0 for layer in (model.fc1, model.fc2)]
    with use_target(target, cache_root):
        values = np.ascontiguousarray(spikes.reshape(samples * steps, n_in), dtype=np.float64)
        inputs = b2.NeuronGroup(
            n_in, "x : 1", dt=dt * b2.second, namespace={"input_spikes": b2.TimedArray(values, dt=dt * b2.second)}
        )
        inputs.run_regularly("x = input_spikes(t, i)", when="start")
        hidden, _ = _neuron_group(hidden_p, model.n_hidden, dt, steps)
        output, output_update = _neuron_group(output_p, model.n_out, dt, steps)
        hidden.bias, output.bias = biases
        syn_in = _dense_synapses(inputs, hidden, weights[0], "x")
        syn_out = _dense_synapses(hidden, output, weights[1], "s")
        # the output layer runs after the hidden reset of the same step
        schedule = [syn_out.summed_updaters["syn_post"], output_update, output.thresholder["spike"], output.resetter["spike"]]
        for order, obj in enumerate(schedule):
            obj.when, obj.order = "after_resets", order
        monitor = b2.SpikeMonitor(output)
        b2.Network(inputs, hidden, output, syn_in, syn_out, monitor).run(samples * steps * dt * b2.second, namespace={})
        step = np.rint(np.asarray(monitor.t_[:]) / dt).astype(np.int64)
        counts = np.zeros((samples, model.n_out), dtype=np.int64)
        np.add.at(counts, (step // steps, np.asarray(monitor.i[:])), 1)
    return counts


@torch.no_grad()
def snntorch_counts(model: ThreeLayerSNN, spikes: np.ndarray, dtype: torch.dtype, batch_size: int = 256) -> np.ndarray:
    """Output spike counts ``[S, K]`` of ``model`` (a copy cast to ``dtype``) for input spikes ``[S, T, D]``."""
    net = copy.deepcopy(model).to(dtype).eval()
    out = []
    for start in range(0, len(spikes), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(spikes[start : start + batch_size].transpose(1, 0, 2))).to(dtype)
        out.append(net(x).sum(dim=0).round().long().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.n_out), dtype=np.int64)


def predicted(rates: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
    """Class per sample from output rates ``[S, K]``: the highest rate (lowest index on ties), or the
    nearest code for bit-vector outputs."""
    r = torch.from_numpy(np.asarray(rates, dtype=np.float64))
    if codes is None:
        return predict(r[None]).numpy()  # predict averages over a leading time axis: here one "step"
    return torch.cdist(r, torch.from_numpy(codes.astype(np.float64))).argmin(dim=-1).numpy()


@dataclass
class ReplayResult:
    """Counts ``[S, K]`` per simulator (``brian2``, ``snntorch-float64``, ``snntorch-float32``), true classes."""

    counts: dict[str, np.ndarray]
    steps: int
    truth: np.ndarray
    codes: np.ndarray | None
    checkpoint: str
    data: str
    target: str

    def predictions(self, name: str) -> np.ndarray:
        return predicted(self.counts[name] / self.steps, self.codes)

    def accuracy(self, name: str) -> float:
        return float((self.predictions(name) == self.truth).mean()) if len(self.truth) else float("nan")

    def agreement(self, name: str, reference: str = "brian2") -> dict:
        """Fractions of samples with the same prediction / identical output counts, and mean |d count|."""
        a, b = self.counts[name], self.counts[reference]
        return {
            "same_prediction": float((self.predictions(name) == self.predictions(reference)).mean()),
            "identical_counts": float((a == b).all(axis=1).mean()),
            "mean_abs_count_diff": float(np.abs(a - b).mean()),
        }


def _check_fit(model: ThreeLayerSNN, meta: dict, n_outputs: int, saved_meta: dict | None, checkpoint: str, data: str) -> None:
    problems = []
    if model.n_in != int(meta["n_inputs"]):
        problems.append(f"the model has {model.n_in} inputs, the data n_inputs={meta['n_inputs']}")
    if model.n_out != n_outputs:
        problems.append(f"the model has {model.n_out} outputs, the data {n_outputs} classes/bits")
    for key in ("dataset", "encoding", "time_steps"):
        if saved_meta and key in saved_meta and saved_meta[key] != meta.get(key):
            problems.append(f"{key}: trained on {saved_meta[key]!r}, this file has {meta.get(key)!r}")
    if problems:
        raise ValueError(f"checkpoint {checkpoint} does not match data {data}: " + "; ".join(problems))


@dataclass
class ReplayInputs:
    """A trained model and the test samples to replay it on, checked to fit each other and Brian2."""

    model: ThreeLayerSNN
    spikes: np.ndarray  # [S, T, D] float32 0/1
    truth: np.ndarray  # [S] classes
    codes: np.ndarray | None
    checkpoint: str
    data: str


def load_inputs(checkpoint: str | Path, data: str | Path, samples: int = 200) -> ReplayInputs:
    """Load a run (directory or checkpoint file) and the first ``samples`` samples of a spike file's test
    split; ``ValueError`` naming both files when they do not fit, or naming the layer Brian2 cannot express."""
    from mdn_snntorch.pipeline.checkpoint import load_checkpoint
    from mdn_snntorch.spikefile import SpikeDataset

    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    doc = load_checkpoint(checkpoint)
    model = doc["model"]
    ds = SpikeDataset(data, "test")
    codes = ds.codes.numpy() if ds.codes is not None else None
    _check_fit(
        model, ds.meta, codes.shape[1] if codes is not None else ds.num_classes, doc.get("data_meta"), str(doc["path"]), str(data)
    )
    _layer_parameters(model.hidden, model.n_hidden, "hidden layer")
    _layer_parameters(model.output, model.n_out, "output layer")
    items = [ds[i] for i in range(min(samples, len(ds)))]
    ds.close()
    spikes = np.stack([x.numpy() for x, _ in items]) if items else np.zeros((0, ds.time_steps, ds.n_inputs), dtype=np.float32)
    ys = [y.numpy() for _, y in items]
    truth = np.asarray(ys, dtype=np.int64) if codes is None else predicted(np.stack(ys), codes)
    return ReplayInputs(model, spikes, truth, codes, str(doc["path"]), str(data))


def run_replay(inputs: ReplayInputs, target: str = "numpy", *, cache_root=None, progress=None) -> ReplayResult:
    """Replay ``inputs`` in Brian2 (``target``) and in snnTorch (float64 and float32); ``progress`` is
    called after each simulator."""
    model, spikes = inputs.model, inputs.spikes
    counts = {}
    for name, run in (
        ("brian2", lambda: brian2_counts(model, spikes, target, cache_root=cache_root)),
        ("snntorch-float64", lambda: snntorch_counts(model, spikes, torch.float64)),
        ("snntorch-float32", lambda: snntorch_counts(model, spikes, torch.float32)),
    ):
        counts[name] = run()
        if progress:
            progress()
    return ReplayResult(counts, spikes.shape[1], inputs.truth, inputs.codes, inputs.checkpoint, inputs.data, target)


def replay(
    checkpoint: str | Path, data: str | Path, samples: int = 200, target: str = "numpy", *, cache_root=None
) -> ReplayResult:
    """:func:`load_inputs` then :func:`run_replay`."""
    return run_replay(load_inputs(checkpoint, data, samples), target, cache_root=cache_root)
