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
  ``metrics.csv`` in the run directory, each written to a temporary file and renamed
  (:mod:`~mdn_snntorch.pipeline.run_files`); the metrics of every evaluated split (``test``, and ``val`` with a
  validation split) per epoch, and their final, best and last-ten summaries.
* A protocol (:mod:`~mdn_snntorch.pipeline.protocols`) is a whole regime: the paper's text or the paper
  authors' script (80 epochs, their step schedule, fresh spikes in training and evaluation, the undetached
  reset).
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
  the last good checkpoint; a data-loader worker that dies stops the run as ``interrupted``, resumable.

The pieces: :mod:`~mdn_snntorch.pipeline.config` (settings), :mod:`~mdn_snntorch.pipeline.run_data` (the data,
its checks and loaders), :mod:`~mdn_snntorch.pipeline.resume`, :mod:`~mdn_snntorch.pipeline.epochs` (the epoch
loop) and :mod:`~mdn_snntorch.pipeline.run_files` (checkpoints and metrics); this module puts them together.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from mdn_snntorch import threads
from mdn_snntorch.pipeline import distributed, resume, run_data
from mdn_snntorch.pipeline.config import MAX_LR, MAX_SEED, TrainConfig, TrainResult, lr_at
from mdn_snntorch.pipeline.epochs import EpochLoop, NonFiniteLossError
from mdn_snntorch.pipeline.model import ThreeLayerSNN
from mdn_snntorch.pipeline.run_files import RunFiles, theta_means
from mdn_snntorch.runlock import claim_dir
from mdn_snntorch.spikefile import SpikeFileError

__all__ = ["MAX_LR", "MAX_SEED", "NonFiniteLossError", "TrainConfig", "TrainResult", "WorkerDied", "lr_at", "train"]


class WorkerDied(RuntimeError):
    """A data-loader worker process died (killed, out of memory): the run stops, its finished epochs kept."""

    exit_code = 1


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


class _Run:
    """One training run: its data, model, optimiser, epoch loop and files; :meth:`fit` runs the epochs."""

    def __init__(self, config: TrainConfig, ctx: distributed.DistContext, device: torch.device, model: ThreeLayerSNN | None):
        threads.configure(config.threads)  # fixed, or the default policy (mdn_snntorch/threads.py)
        if config.batch_size < ctx.world_size:
            raise ValueError(f"batch_size {config.batch_size} is smaller than the number of processes ({ctx.world_size})")
        if config.theta_per_row and ctx.world_size > 1:
            raise ValueError(f"theta_per_row runs in one process only (its theta rows are the whole batch), not {ctx.world_size}")
        self.ctx, self.device = ctx, device
        self.out = Path(config.out) if config.out else None
        checkpoint = resume.checkpoint_to_resume(config, self.out)
        self.config = config if checkpoint is None else resume.merge_resumed(config, checkpoint)
        self.data = run_data.load(self.config, device)
        self.model = self._build_model(model, checkpoint)
        if checkpoint is not None:
            run_data.check_resumed(checkpoint, self.data)
        self.model_spec = self.model.spec()
        self.optimizer = self._build_optimizer()
        self.point = resume.restore(self.optimizer, checkpoint, self.config) if checkpoint else resume.ResumePoint()
        self.files = RunFiles(self.out, ctx.is_main, self.data)
        net = (
            DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda" else None, broadcast_buffers=False)
            if ctx.enabled
            else self.model
        )
        cfg = self.config
        self.loop = EpochLoop(self.model, net, self.optimizer, ctx, device, self.data.codes, cfg.bf16, cfg.progress)
        self.loaders = run_data.loaders(self.data, self.config, self.model.theta_rows)

    def _build_model(self, given: ThreeLayerSNN | None, checkpoint: dict | None) -> ThreeLayerSNN:
        """The checkpoint's network, else ``given``, else a new one from the config (weights seeded), on the device."""
        config = self.config
        torch.manual_seed(config.seed)
        if checkpoint is not None:
            model = ThreeLayerSNN.from_spec(checkpoint["model_spec"])
            run_data.check_fit(model, self.data, f"the model in checkpoint {checkpoint['path']}")
            model.load_state_dict(checkpoint["model"])
        elif given is None:
            model = ThreeLayerSNN(
                self.data.train_set.n_inputs,
                config.hidden,
                self.data.n_outputs,
                neuron=config.neuron,
                output_neuron=config.output_neuron,
                theta_rows=config.batch_size if config.theta_per_row else None,
                dt=config.dt,
                substeps=config.substeps,
                **({} if config.detach_reset else {"detach_reset": False}),
            )
        else:
            model = given
            run_data.check_fit(model, self.data, "the given model")
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

    # ---- epochs ---------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg, main, metrics = self.config, self.ctx.is_main, self.point.metrics
        if self.point.start_epoch >= cfg.epochs and main and cfg.progress:
            print(f"{self.out}: already trained for {self.point.start_epoch} epochs (asked for {cfg.epochs})", file=sys.stderr)
        for epoch in range(self.point.start_epoch, cfg.epochs):
            try:
                row = self._epoch(epoch)
                metrics.append(row)
                if main:
                    if self.files.active:
                        self.point.last_checkpoint = self.files.save_epoch(
                            epoch, cfg, self.model, self.model_spec, self.optimizer, metrics, self.point.last_checkpoint
                        )
                    if cfg.progress:
                        tqdm.write(_epoch_line(row, cfg.epochs), file=sys.stderr)
            except RuntimeError as error:  # a worker's death, raised in the epoch or (PyTorch's SIGCHLD handler) anywhere
                if "DataLoader worker" not in str(error):
                    raise
                self._worker_died(epoch, error)
            distributed.barrier(self.ctx)
        return TrainResult(self.model, cfg.to_dict(), metrics, self.out, self.point.last_checkpoint)

    def _epoch(self, epoch: int) -> dict[str, Any]:
        """Train epoch ``epoch`` (0-based) and evaluate; its metrics row. A failure writes the run files first."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(group["base_lr"], cfg.lr_decay, epoch, cfg.lr_step, cfg.lr_epoch_offset)
        self.loaders.train.set_epoch(epoch)
        t0 = time.perf_counter()
        try:
            train_stats = self.loop.train_epoch(self.loaders.train, epoch, cfg.epochs, self.point.last_checkpoint)
            train_time = time.perf_counter() - t0
            t0 = time.perf_counter()
            evaluated = {name: self.loop.evaluate(loader) for name, loader in self.loaders.evaluations(epoch).items()}
        except (NonFiniteLossError, SpikeFileError) as error:  # SpikeFileError: the data changed or are damaged
            self.files.write(cfg, self.point.metrics, status="stopped", error=str(error))
            raise
        except KeyboardInterrupt:
            self.files.write(cfg, self.point.metrics, status="interrupted")
            raise
        lr = {"lr": lr_at(cfg.lr, cfg.lr_decay, epoch, cfg.lr_step, cfg.lr_epoch_offset)}
        lr["lr_theta"] = (
            lr_at(cfg.eta_theta, cfg.lr_decay, epoch, cfg.lr_step, cfg.lr_epoch_offset) if self.model.theta_parameters() else None
        )
        row = {"epoch": epoch + 1, **lr, **{f"train_{k}": v for k, v in train_stats.items()}}
        for name, stats in evaluated.items():
            row.update({f"{name}_{k}": v for k, v in stats.items()})
        row.update({"epoch_time_s": train_time, "eval_time_s": time.perf_counter() - t0, **theta_means(self.model)})
        return row

    def _worker_died(self, epoch: int, error: RuntimeError) -> None:
        """A data-loader worker died: ``interrupted`` in the run files, one line naming the way on."""
        self.files.write(self.config, self.point.metrics, status="interrupted", error=" ".join(str(error).split()))
        last = self.point.last_checkpoint
        kept = f"the last good checkpoint is {last}" if last else "no epoch had finished"
        cause = " ".join(str(error).split()).rstrip(".")
        raise WorkerDied(f"{cause} during epoch {epoch + 1}; {kept}; continue with --resume") from error


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  train {100 * row['train_acc']:.2f}%  "
        f"test {100 * row['test_acc']:.2f}%  rate hidden {row['train_hidden_rate']:.3f} output {row['train_output_rate']:.3f}  "
        f"{row['epoch_time_s']:.1f} s"
    )
