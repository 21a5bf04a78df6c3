"""Converters from each data set of the paper to an HDF5 spike file (``mdn prep <dataset>``).

The file format and the loader are in :mod:`mdn_snntorch.data`; see docs/data.md.
"""
