r"""Training the 3-layer SNN on an HDF5 spike file (paper §2, §4.2): ``mdn train`` and :func:`train`.

* Loss: paper Eq. 4 (:func:`~mdn_snntorch.loss.rate_mse_loss`), Adam, PyTorch's default initialisation.
* Two parameter groups: synaptic weights with ``lr`` (eta_W) and, when theta is learnable, the dynamic
  parameters with ``lr_theta`` (eta_D, default eta_W).
* Learning-rate schedule (the paper only says "decay learning rate by epochs";
  ``docs/model.md#training-schedule``): a step decay,

  .. math:: \eta(e) = \eta_0 \, \gamma^{\lfloor e / k \rfloor}, \qquad e = 0, 1, \ldots
            \quad (\gamma = \texttt{lr\_decay} = 0.9,\ k = \texttt{lr\_step} = 1)

  for both groups. The default (k = 1) is exponential per epoch, so epoch 20 runs at 0.135 x the
  initial rate; ``lr_decay=1`` turns decay off; ``lr_step=50, lr_decay=0.1`` is PyTorch's
  ``StepLR(step_size=50, gamma=0.1)``.
* A NaN or inf loss or gradient stops the run before the update, naming epoch and batch; the
  checkpoints of the finished epochs stay as they are.
* Per finished epoch: ``epoch_NNN.pt`` (model, theta, optimiser, config, metrics), ``metrics.json`` and
  ``metrics.csv`` in the run directory, each written to a temporary file and renamed.
* Deterministic for a seed on CPU: the weights come from ``torch.manual_seed(seed)`` and the batch order
  and spike sampling of epoch ``e`` from the loader's ``(seed, e)``; so ``resume`` continues exactly.
* Data parallel under ``torchrun --nproc_per_node=N``: ``batch_size`` is the global batch. Every process
  reads the same global batch and keeps rows ``rank::N`` (DistributedSampler's interleaving); its loss
  is weighted by ``N * rows / batch`` so that DistributedDataParallel's gradient average is exactly the
  gradient of the global batch's mean loss. An N-process run therefore takes the same steps as one
  process with the same global batch. Metrics are summed over processes; rank 0 writes the files.
  (The loader's own rank/world_size shards are contiguous slices of the epoch order, which would give
  the processes different batches than the single-process run.)
* Failure behaviour (docs/robustness.md): the run directory is claimed before anything else (checked for
  writability and locked, :func:`mdn_snntorch.runlock.claim_dir`; a second run on it fails at once); the
  spike file is pinned (:class:`~mdn_snntorch.spikefile.FileIdentity`) and checked every epoch and on
  ``resume``, which also compares the checkpoint's stored data meta data; an unloadable newest checkpoint
  falls back to the newest loadable one; a refused write (disk full) stops the run naming the file and
  the last good checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from mdn_snntorch import signals, threads
from mdn_snntorch.atomic import WriteError
from mdn_snntorch.neurons import factory
from mdn_snntorch.pipeline import distributed
from mdn_snntorch.pipeline.checkpoint import latest_checkpoint, newest_loadable, save_checkpoint, write_csv, write_json
from mdn_snntorch.pipeline.loss import correct, cosine_score, rate_mse_loss
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.runlock import claim_dir
from mdn_snntorch.spikefile import SpikeFileError

#: the largest seed, learning rate and thread count a config accepts
MAX_SEED = 2**32 - 1
MAX_LR = 1e6
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")

if TYPE_CHECKING:
    from mdn_snntorch.spikefile import SpikeDataset


class NonFiniteLossError(RuntimeError):
    """The loss or its gradient became NaN or inf; ``epoch`` and ``batch`` are 1-based.

    Both are checked: with Heaviside spikes a diverging state (V, U -> inf) silences the spikes and
    leaves the loss finite, while the gradient through it is NaN.
    """

    def __init__(self, epoch: int, batch: int, loss: float, grad_norm: float, last_checkpoint: Path | None):
        self.epoch, self.batch, self.loss, self.grad_norm, self.last_checkpoint = epoch, batch, loss, grad_norm, last_checkpoint
        what = (
            f"non-finite loss ({loss})" if not math.isfinite(loss) else f"non-finite gradient (norm {grad_norm}, loss {loss:.4g})"
        )
        kept = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint had been written yet"
        super().__init__(f"{what} at epoch {epoch}, batch {batch}: training stopped before the update; {kept}")


@dataclass
class TrainConfig:
    """Everything a training run depends on. ``neuron``/``output_neuron``: a preset name, ``"learnable"``,
    ``"1st-order"`` or a ``MetaNeuron.to_dict()`` (a library neuron).

    Three options reproduce the paper authors' published code (docs/model.md#the-authors-published-code):
    ``theta_per_row`` (learnable theta of shape ``[batch_size, N]``: one per row of the batch; incomplete
    training batches are skipped, the test set runs in padded batches of ``batch_size``),
    ``detach_reset=False`` (the spike's gradient flows through the reset) and ``analog`` (the data file's
    per-step analog values instead of its spikes, for the audio tasks)."""

    data: str
    out: str | None = None
    neuron: str | dict = "2-FS"
    output_neuron: str | dict | None = None
    epochs: int = 20
    batch_size: int = 100
    lr: float = 1e-3
    lr_theta: float | None = None
    lr_decay: float = 0.9
    lr_step: int = 1
    resample: bool = False
    hidden: int = 500
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    dt: float = 1.0
    substeps: int = 1
    eval_batch_size: int = 1000
    num_workers: int = 0
    threads: int | None = None
    progress: bool = True
    resume: bool = False
    recipe: str | None = None
    theta_per_row: bool = False
    detach_reset: bool = True
    analog: bool = False

    #: fields a resumed run may change (the rest must equal the checkpoint's)
    RESUMABLE_CHANGES = (
        "epochs", "lr", "lr_theta", "lr_decay", "lr_step", "device", "bf16", "eval_batch_size", "num_workers",
        "threads", "progress", "out", "resume", "recipe",
    )  # fmt: skip
    #: earlier names of settings, as they may appear in saved runs
    RENAMED = {"preset": "recipe"}

    def __post_init__(self):
        for name in ("epochs", "batch_size", "hidden", "eval_batch_size", "substeps", "lr_step", "num_workers", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"training setting {name}={value!r} must be an integer")
        for name in ("lr", "lr_theta", "lr_decay", "dt"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"training setting {name}={value!r} must be a number")
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "hidden": self.hidden >= 1,
            "eval_batch_size": self.eval_batch_size >= 1,
            "substeps": self.substeps >= 1,
            "lr": math.isfinite(self.lr) and 0 < self.lr <= MAX_LR,
            "lr_theta": self.lr_theta is None or (math.isfinite(self.lr_theta) and 0 < self.lr_theta <= MAX_LR),
            "lr_decay": 0 < self.lr_decay <= 1,
            "lr_step": self.lr_step >= 1,
            "dt": math.isfinite(self.dt) and self.dt > 0,
            "num_workers": self.num_workers >= 0,
            "seed": 0 <= self.seed <= MAX_SEED,
            "threads": self.threads is None
            or (isinstance(self.threads, int) and not isinstance(self.threads, bool) and self.threads >= 1),
            "device": isinstance(self.device, str) and bool(_DEVICE.match(self.device)),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"training setting {name}={getattr(self, name)!r} is out of range")
        for name in ("resample", "bf16", "progress", "resume", "theta_per_row", "detach_reset", "analog"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"training setting {name}={getattr(self, name)!r} must be true or false")
        if self.theta_per_row and self.neuron != factory.LEARNABLE:
            raise ValueError(f"theta_per_row needs neuron='learnable' (theta per batch row), not {self.neuron!r}")
        if self.analog and self.resample:
            raise ValueError("analog and resample exclude each other: analog input has no spikes to redraw")
        for name in ("neuron", "output_neuron"):
            spec = getattr(self, name)
            try:
                if isinstance(spec, str):
                    factory.lookup(spec)  # the one place names are resolved
                elif spec is not None:
                    factory.resolve(spec)
            except (ValueError, TypeError) as err:
                raise ValueError(f"{name}: {err} (or a library neuron, `--library FILE`)") from None

    @property
    def eta_theta(self) -> float:
        return self.lr if self.lr_theta is None else self.lr_theta

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def saved_value(cls, saved: dict[str, Any], name: str) -> Any:
        """Setting ``name`` of a saved config; a setting newer than the save has its default value."""
        saved = {cls.RENAMED.get(k, k): v for k, v in saved.items()}
        if name in saved:
            return saved[name]
        return next((f.default for f in dataclasses.fields(cls) if f.name == name), None)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = {cls.RENAMED.get(k, k): v for k, v in d.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        return cls(**d)


@dataclass
class TrainResult:
    model: ThreeLayerSNN
    config: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    out: Path | None = None
    checkpoint: Path | None = None

    @property
    def test_acc(self) -> float:
        """Test accuracy after the last epoch."""
        return self.metrics[-1]["test_acc"]


def lr_at(base: float, decay: float, epoch: int, step: int = 1) -> float:
    """eta(e) = eta_0 * decay^floor(e / step) for the 0-based epoch e."""
    return base * decay ** (epoch // step)


# --------------------------------------------------------------------------------------------
def train(config: TrainConfig | dict, model: ThreeLayerSNN | None = None) -> TrainResult:
    """Train (or, with ``config.resume``, continue) a run; returns the model and per-epoch metrics.

    ``model``: train this network instead of building one from the config (its input and output
    sizes must match the data file).
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
    ctx = distributed.context_from_env()
    with ExitStack() as stack:
        if config.out and ctx.is_main:  # checked and locked before any work
            stack.enter_context(claim_dir(config.out, "run directory"))
        device = distributed.pick_device(config.device, ctx)
        created = distributed.init(ctx, device)
        try:
            return _Run(config, ctx, device, model).fit()
        finally:
            if created:
                torch.distributed.destroy_process_group()


def _data_fit(model: ThreeLayerSNN, n_inputs: int, n_outputs: int, data: str, whose: str) -> None:
    if model.n_in != n_inputs:
        raise ValueError(
            f"input size mismatch: data file {data} has {n_inputs} inputs per time step, but {whose} expects {model.n_in} (n_in)"
        )
    if model.n_out != n_outputs:
        raise ValueError(
            f"output size mismatch: data file {data} needs {n_outputs} outputs, but {whose} has {model.n_out} (n_out)"
        )


class _Run:
    """One training run: data, model, optimiser, files; :meth:`fit` runs the epochs."""

    def __init__(self, config: TrainConfig, ctx: distributed.DistContext, device: torch.device, model: ThreeLayerSNN | None):
        threads.configure(config.threads)  # fixed, or the default policy (mdn_snntorch/threads.py)
        if config.batch_size < ctx.world_size:
            raise ValueError(f"batch_size {config.batch_size} is smaller than the number of processes ({ctx.world_size})")
        if config.theta_per_row and ctx.world_size > 1:
            raise ValueError(f"theta_per_row runs in one process only (its theta rows are the whole batch), not {ctx.world_size}")
        self.ctx, self.device = ctx, device
        self.out = Path(config.out) if config.out else None
        checkpoint = self._checkpoint_to_resume(config)
        if checkpoint is not None:
            config = self._merge_resumed(config, checkpoint)
        self.config = config

        train_set, n_outputs = self._load_data()
        self.model = self._build_model(model, train_set.n_inputs, n_outputs, checkpoint)
        if checkpoint is not None:
            self._check_resumed_data(checkpoint)
        self.model_spec = self.model.spec()
        self.optimizer = self._build_optimizer()
        self.metrics: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.last_checkpoint: Path | None = None
        if checkpoint is not None:
            self._resume(checkpoint)
        self.net = (
            DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda" else None, broadcast_buffers=False)
            if ctx.enabled
            else self.model
        )
        self.train_loader, self.test_loader = self._build_loaders(train_set)
        self.autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=config.bf16)

    # ---- set-up ---------------------------------------------------------------------------
    def _load_data(self) -> tuple[SpikeDataset, int]:
        """The training split (its meta data and class codes kept) and the number of outputs it needs."""
        from mdn_snntorch.spikefile import SpikeDataset

        train_set = SpikeDataset(self.config.data, "train")
        self.meta = train_set.meta
        self.data_identity = train_set.identity
        self.codes = train_set.codes.to(self.device) if train_set.codes is not None else None
        n_outputs = int(train_set.codes.shape[1]) if train_set.codes is not None else int(train_set.num_classes)
        return train_set, n_outputs

    def _build_model(self, given: ThreeLayerSNN | None, n_inputs: int, n_outputs: int, checkpoint: dict | None) -> ThreeLayerSNN:
        """The checkpoint's network, else ``given``, else a new one from the config (weights seeded), on the device."""
        config = self.config
        torch.manual_seed(config.seed)
        if checkpoint is not None:
            model = ThreeLayerSNN.from_spec(checkpoint["model_spec"])
            _data_fit(model, n_inputs, n_outputs, config.data, f"the model in checkpoint {checkpoint['path']}")
            model.load_state_dict(checkpoint["model"])
        elif given is None:
            model = ThreeLayerSNN(
                n_inputs,
                config.hidden,
                n_outputs,
                neuron=config.neuron,
                output_neuron=config.output_neuron,
                theta_rows=config.batch_size if config.theta_per_row else None,
                dt=config.dt,
                substeps=config.substeps,
                **({} if config.detach_reset else {"detach_reset": False}),
            )
        else:
            model = given
            _data_fit(model, n_inputs, n_outputs, config.data, "the given model")
        for neuron in (model.hidden, model.output):
            neuron.check_input = False  # a non-finite input shows up as a non-finite loss, checked per batch
        return model.to(self.device)

    def _build_optimizer(self) -> torch.optim.Adam:
        """Adam over the weights (``lr``) and, when theta is learnable, the theta (``eta_theta``)."""
        config, model = self.config, self.model
        groups = [{"params": model.weight_parameters(), "lr": config.lr, "base_lr": config.lr, "name": "weights"}]
        if model.theta_parameters():
            groups.append(
                {"params": model.theta_parameters(), "lr": config.eta_theta, "base_lr": config.eta_theta, "name": "theta"}
            )
        return torch.optim.Adam(groups)

    def _build_loaders(self, train_set: SpikeDataset):
        """The shuffled training loader (epoch order and spike sampling from ``(seed, epoch)``) and the test loader."""
        from mdn_snntorch.pipeline.loader import SpikeLoader, spike_loader

        config = self.config
        train_loader = SpikeLoader(
            train_set, config.batch_size, shuffle=True, seed=config.seed, num_workers=config.num_workers,
            resample=config.resample, analog=config.analog,
        )  # fmt: skip
        eval_batch = config.eval_batch_size
        if self.model.theta_rows:  # whole multiples of the theta rows; the last batch is padded (_forward_rows)
            eval_batch = max(1, eval_batch // self.model.theta_rows) * self.model.theta_rows
        test_loader = spike_loader(config.data, "test", eval_batch, num_workers=config.num_workers, analog=config.analog)
        train_set.check_same(test_loader.dataset.identity)  # both splits from the same file
        return train_loader, test_loader

    # ---- resume ---------------------------------------------------------------------------
    def _checkpoint_to_resume(self, config: TrainConfig) -> dict | None:
        existing = latest_checkpoint(self.out) if self.out else None
        if not config.resume:
            if existing is not None:
                raise ValueError(
                    f"run directory {self.out} already holds {existing.name}; "
                    "pass --resume to continue it or choose another --out"
                )
            return None
        if self.out is None:
            raise ValueError("resume needs the run directory (--out) of the run to continue")
        return newest_loadable(self.out) if existing is not None else None

    @staticmethod
    def _merge_resumed(config: TrainConfig, checkpoint: dict) -> TrainConfig:
        saved = checkpoint["config"]
        new = config.to_dict()
        for name, value in new.items():
            if name in TrainConfig.RESUMABLE_CHANGES:
                continue
            if name == "data":
                same = Path(value).resolve() == Path(saved[name]).resolve()
            else:
                same = value == TrainConfig.saved_value(saved, name)
            if not same:
                changeable = ", ".join(TrainConfig.RESUMABLE_CHANGES[:-3])
                raise ValueError(
                    f"cannot resume {checkpoint['path']} with {name}={value!r}: the run was started with "
                    f"{name}={TrainConfig.saved_value(saved, name)!r} (a resumed run may change only {changeable})"
                )
        return config

    def _check_resumed_data(self, checkpoint: dict) -> None:
        """The data file must be the one the run started on: the checkpoint's data meta data and identity."""
        from mdn_snntorch.spikefile import FileIdentity

        now = self.data_identity
        saved = checkpoint.get("data_identity") or {}
        then = FileIdentity(
            int(saved.get("size", now.size)), int(saved.get("mtime_ns", now.mtime_ns)), checkpoint.get("data_meta") or now.meta
        )
        changes = then.changes(FileIdentity(now.size, now.mtime_ns, _plain(now.meta)))
        if changes:
            raise ValueError(
                f"cannot resume {checkpoint['path']}: the data file {self.config.data} is not the one the run was trained on "
                f"({'; '.join(changes)}); start a new run (another --out) on it"
            )

    def _resume(self, checkpoint: dict) -> None:
        """Continue after the checkpoint's epoch: its optimiser state (with this config's learning rates) and metrics."""
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        for group in self.optimizer.param_groups:  # learning rates may change on resume
            group["base_lr"] = self.config.lr if group["name"] == "weights" else self.config.eta_theta
        self.metrics = list(checkpoint["metrics"])
        self.start_epoch = int(checkpoint["epoch"])
        self.last_checkpoint = Path(checkpoint["path"])

    # ---- epochs ---------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg, main = self.config, self.ctx.is_main
        if self.start_epoch >= cfg.epochs and main and cfg.progress:
            print(f"{self.out}: already trained for {self.start_epoch} epochs (asked for {cfg.epochs})", file=sys.stderr)
        for epoch in range(self.start_epoch, cfg.epochs):
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(group["base_lr"], cfg.lr_decay, epoch, cfg.lr_step)
            self.train_loader.set_epoch(epoch)
            t0 = time.perf_counter()
            try:
                train_stats = self._train_epoch(epoch)
                train_time = time.perf_counter() - t0
                t0 = time.perf_counter()
                test_stats = self._evaluate()
            except (NonFiniteLossError, SpikeFileError) as error:  # SpikeFileError: the data changed or are damaged
                self._write_run_files(status="stopped", error=str(error))
                raise
            row = {
                "epoch": epoch + 1,
                "lr": lr_at(cfg.lr, cfg.lr_decay, epoch, cfg.lr_step),
                "lr_theta": lr_at(cfg.eta_theta, cfg.lr_decay, epoch, cfg.lr_step) if self.model.theta_parameters() else None,
                **{f"train_{k}": v for k, v in train_stats.items()},
                **{f"test_{k}": v for k, v in test_stats.items()},
                "epoch_time_s": train_time,
                "eval_time_s": time.perf_counter() - t0,
            }
            row.update(self._theta_summary())
            self.metrics.append(row)
            if main:
                if self.out is not None:
                    self._save(epoch)
                if cfg.progress:
                    tqdm.write(_epoch_line(row, cfg.epochs), file=sys.stderr)
            distributed.barrier(self.ctx)
        return TrainResult(self.model, cfg.to_dict(), self.metrics, self.out, self.last_checkpoint)

    def _save(self, epoch: int) -> None:
        """The checkpoint and run files of finished epoch ``epoch`` (0-based); a refused write stops the run."""
        signals.check()  # a Ctrl-C swallowed during the epoch stops before writing
        try:
            with signals.deferred():  # the checkpoint and the run files that describe it, never one without the other
                self.last_checkpoint = save_checkpoint(self.out, epoch + 1, self._checkpoint_payload())
                self._write_run_files(status="finished" if epoch + 1 == self.config.epochs else "running")
        except WriteError as err:
            kept = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was written"
            out = WriteError(f"{err}; training stopped after epoch {epoch + 1}, {kept}")
            out.errno = err.errno
            raise out from err

    def _my_rows(self, x: torch.Tensor, y: torch.Tensor):
        """This process's rows ``rank::N`` of a global batch, on the device, and the global batch size."""
        r, w = self.ctx.rank, self.ctx.world_size
        x, y = (x, y) if w == 1 else (x[:, r::w], y[r::w])
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.net.train()
        sums = torch.zeros(6, dtype=torch.float64, device=self.device)  # loss*n, correct, n, hidden rate*n, output rate*n, cosine
        bar = tqdm(
            self.train_loader,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            leave=False,
            disable=True if not (self.config.progress and self.ctx.is_main) else None,
            file=sys.stderr,  # None: no bar off a terminal
        )
        for batch, (x, y) in enumerate(bar):
            signals.check()
            batch_rows = y.shape[0]
            if batch_rows < self.ctx.world_size:  # too few rows to give every process one; skipped by all
                continue
            if self.model.theta_rows and batch_rows != self.model.theta_rows:  # theta per row: full batches only
                continue
            x, y = self._my_rows(x, y)
            with torch.autocast(**self.autocast):
                out, hidden = self.net(x, return_hidden=True)
            loss = rate_mse_loss(out.float(), y)
            weight = self.ctx.world_size * y.shape[0] / batch_rows  # DDP's average of weighted means = global mean
            self.optimizer.zero_grad(set_to_none=True)
            (loss * weight if weight != 1 else loss).backward()
            grad_norm = torch.linalg.vector_norm(
                torch.stack([p.grad.detach().float().norm() for p in self.model.parameters() if p.grad is not None])
            )
            bad = (~torch.isfinite(loss.detach()) | ~torch.isfinite(grad_norm)).to(torch.float32).reshape(1)
            if bool(distributed.all_reduce_sum(bad, self.ctx).item()):
                raise NonFiniteLossError(epoch + 1, batch + 1, loss.item(), grad_norm.item(), self.last_checkpoint)
            self.optimizer.step()
            n = y.shape[0]
            with torch.no_grad():
                sums += torch.stack(
                    [
                        loss.detach().double() * n,
                        correct(out, y, self.codes).double(),
                        torch.tensor(float(n), device=self.device, dtype=torch.float64),
                        hidden.detach().double().mean() * n,
                        out.detach().double().mean() * n,
                        self._cosine(out.detach(), y),
                    ]
                )
            if batch % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        return _rates(distributed.all_reduce_sum(sums, self.ctx), self.codes is not None)

    @torch.no_grad()
    def _evaluate(self) -> dict[str, float]:
        self.model.eval()
        sums = torch.zeros(6, dtype=torch.float64, device=self.device)
        for x, y in self.test_loader:
            x, y = self._my_rows(x, y)
            if y.shape[0] == 0:
                continue
            with torch.autocast(**self.autocast):
                out, hidden = self._forward_rows(x)
            n = y.shape[0]
            sums += torch.stack(
                [
                    rate_mse_loss(out.float(), y).double() * n,
                    correct(out, y, self.codes).double(),
                    torch.tensor(float(n), device=self.device, dtype=torch.float64),
                    hidden.double().mean() * n,
                    out.double().mean() * n,
                    self._cosine(out, y),
                ]
            )
        return _rates(distributed.all_reduce_sum(sums, self.ctx), self.codes is not None)

    def _forward_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluation forward; a network with theta per row runs chunks of ``theta_rows``, the last one padded
        with silent rows whose outputs are dropped."""
        rows = self.model.theta_rows
        if not rows:
            return self.model(x, return_hidden=True)
        outs, hiddens = [], []
        for chunk in x.split(rows, dim=1):
            n = chunk.shape[1]
            if n < rows:
                chunk = torch.cat([chunk, chunk.new_zeros(chunk.shape[0], rows - n, chunk.shape[2])], dim=1)
            out, hidden = self.model(chunk, return_hidden=True)
            outs.append(out[:, :n])
            hiddens.append(hidden[:, :n])
        return torch.cat(outs, dim=1), torch.cat(hiddens, dim=1)

    def _cosine(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch's summed cosine score (bit-vector targets only; 0 for class labels)."""
        if self.codes is None:
            return torch.zeros((), dtype=torch.float64, device=self.device)
        return cosine_score(out.float(), y).double()

    # ---- files ----------------------------------------------------------------------------
    def _theta_summary(self) -> dict[str, float]:
        """Mean of each learnable theta per layer (empty for frozen neurons)."""
        return {
            f"{name}_mean": float(p.detach().mean())
            for name, p in self.model.named_parameters()
            if name.split(".")[-1].startswith("theta_")
        }

    def _checkpoint_payload(self) -> dict[str, Any]:
        theta = {
            name: p.detach().cpu().clone()
            for name, p in self.model.named_parameters()
            if name.split(".")[-1].startswith("theta_")
        }
        return {
            "model_spec": self.model_spec,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "theta": theta,
            "optimizer": self.optimizer.state_dict(),
            "config": self.config.to_dict(),
            "metrics": self.metrics,
            "data_meta": _plain(self.meta),
            "data_identity": self.data_identity.to_dict(),
        }

    def _write_run_files(self, status: str, error: str | None = None) -> None:
        if self.out is None or not self.ctx.is_main:
            return
        doc = {
            "status": status,
            "epochs_done": len(self.metrics),
            "config": self.config.to_dict(),
            "data_meta": _plain(self.meta),
            "data_identity": self.data_identity.to_dict(),
            "epochs": self.metrics,
        }
        if error:
            doc["error"] = error
        write_json(self.out / "metrics.json", doc)
        write_csv(self.out / "metrics.csv", self.metrics)


def _rates(sums: torch.Tensor, bit_targets: bool) -> dict[str, float]:
    """Means per sample; ``cosine`` (the authors' score, loss.cosine_score) only for bit-vector targets."""
    loss, right, n, hidden, output, cosine = sums.tolist()
    n = max(n, 1.0)
    rates = {"loss": loss / n, "acc": right / n, "hidden_rate": hidden / n, "output_rate": output / n}
    if bit_targets:
        rates["cosine"] = cosine / n
    return rates


def _plain(value: Any) -> Any:
    """Meta data as plain Python (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  train {100 * row['train_acc']:.2f}%  "
        f"test {100 * row['test_acc']:.2f}%  rate hidden {row['train_hidden_rate']:.3f} output {row['train_output_rate']:.3f}  "
        f"{row['epoch_time_s']:.1f} s"
    )
