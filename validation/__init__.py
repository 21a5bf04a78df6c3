"""Brian2 cross-check of the MDN neurons and of trained networks (``mdn validate``).

:func:`validation.report.run_validation` is the entry point; ``docs/validation.md`` explains the
comparisons, the tolerance rules and the dt study.
"""
