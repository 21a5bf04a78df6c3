"""Converters from each data set of the paper to an HDF5 spike file (``mdn prep <dataset>``).

The file format and its writer are in :mod:`mdn_snntorch.spikefile` (the only part of the package the
converters use), the loader in :mod:`mdn_snntorch.pipeline.loader`; see docs/data.md.
"""
