"""HDF5 spike files (format ``mdn-spikes``): the format, its reader and its writers.

One file holds one data set in one encoding. Root attributes carry the meta data (:data:`META_KEYS`);
groups ``train`` and ``test`` each hold

- ``spikes``: uint8 ``[N, T, ceil(D / 8)]``, the binary spike trains packed along the feature axis
  (``numpy.packbits``, big bit order: feature ``d`` is bit ``7 - d % 8`` of byte ``d // 8``), chunked
  by blocks of samples and compressed;
- ``labels``: int64 ``[N]`` (``target_kind == "labels"``) or ``targets``: uint8 ``[N, K]`` bit vectors
  (``target_kind == "targets"``, NETtalk), with the code table ``codes`` uint8 ``[C, K]`` at the root;
- optionally (rate-coded images) ``intensity``: uint8 ``[N, D]`` with the attribute ``levels`` ``L``,
  the spike probability of every input at every step being ``p = intensity / L``;
- optionally (the audio converters, event counts) ``analog``: uint8 ``[N, T, D]`` with the attribute
  ``levels`` ``L``: the analog input ``analog / L`` in [0, 1] the spikes were drawn from (or the graded
  event counts the spikes clip to 1).

With ``resample`` the loader (:mod:`mdn_snntorch.pipeline.loader`) ignores the stored spikes of a split
with ``intensity`` and draws new ones for every batch, ``S[t, b, d] = [r < intensity[b, d]]`` with ``r``
uniform on ``{0, ..., L - 1}`` (exactly Bernoulli(p)), from a generator seeded by ``(seed, epoch, rank,
window)``: a fresh realisation each epoch, the same one for the same seed and epoch. With ``analog`` it
feeds ``analog / L`` itself instead of spikes.

The parts: :mod:`.format` (constants, packing, meta data, identity), :mod:`.limits` (what a reader
accepts), :mod:`.chunks` (bounded chunk decoding and its cache), :mod:`.dataset` (:class:`SpikeDataset`),
:mod:`.writer` (:class:`SpikeFileWriter`) and :mod:`.arrays` (:func:`write_arrays`, :func:`write_dataset`).
h5py is imported on first use (the ``data`` extra). Loader batches are time-major: ``x [T, B, D]`` float32
(0/1, or analog values in [0, 1]), ``y [B]`` int64 or ``[B, K]`` float32.
"""

from mdn_snntorch.spikefile.arrays import write_arrays, write_dataset
from mdn_snntorch.spikefile.chunks import ALLOWED_FILTERS
from mdn_snntorch.spikefile.dataset import (
    ANALOG_CONVERTERS,
    DEFAULT_CACHE_BYTES,
    PATHOLOGICAL_CHUNK_BYTES,
    ChunkingWarning,
    SpikeDataset,
    analog_values,
)
from mdn_snntorch.spikefile.errors import InputChangedError, SpikeFileError
from mdn_snntorch.spikefile.format import (
    FORMAT,
    META_KEYS,
    OPTIONAL_META_KEYS,
    SPLITS,
    TARGET_KINDS,
    VERSION,
    FileIdentity,
    encode_meta,
    make_meta,
    meta_changes,
    pack_spikes,
    package_version,
    packed_width,
    read_attributes,
    read_meta,
    unpack_spikes,
)
from mdn_snntorch.spikefile.limits import (
    MAX_ATTRIBUTE_BYTES,
    MAX_ATTRIBUTES,
    MAX_CLASSES,
    MAX_COMPRESSION,
    MAX_INPUTS,
    MAX_SAMPLE_BITS,
    MAX_TIME_STEPS,
)
from mdn_snntorch.spikefile.writer import (
    CHUNK_BYTES,
    COMPRESSION,
    SpikeFileWriter,
    check_output,
    check_target,
    chunk_rows,
    output_lock,
)

__all__ = [
    "ALLOWED_FILTERS", "ANALOG_CONVERTERS", "CHUNK_BYTES", "COMPRESSION", "DEFAULT_CACHE_BYTES", "FORMAT",
    "MAX_ATTRIBUTES", "MAX_ATTRIBUTE_BYTES", "MAX_CLASSES", "MAX_COMPRESSION", "MAX_INPUTS", "MAX_SAMPLE_BITS",
    "MAX_TIME_STEPS", "META_KEYS", "OPTIONAL_META_KEYS", "PATHOLOGICAL_CHUNK_BYTES", "SPLITS", "TARGET_KINDS",
    "VERSION", "ChunkingWarning", "FileIdentity", "InputChangedError", "SpikeDataset", "SpikeFileError",
    "SpikeFileWriter", "analog_values", "check_output", "check_target", "chunk_rows", "encode_meta", "make_meta",
    "meta_changes", "output_lock", "pack_spikes", "package_version", "packed_width", "read_attributes", "read_meta",
    "unpack_spikes", "write_arrays", "write_dataset",
]  # fmt: skip
