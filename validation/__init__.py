"""Brian2 cross-check of the MDN neurons and of trained networks (``mdn validate``).

:func:`validation.report.run_validation` is the entry point: :mod:`validation.run` runs the simulators and
compares them, :mod:`validation.summary` judges and summarises the comparisons (``metrics.json``) and
:mod:`validation.render` writes the report. ``docs/validation.md`` explains the comparisons, the tolerance
rules and the dt study.
"""
