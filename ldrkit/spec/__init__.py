"""Every experiment's spec, in pure Python (no torch): the normal form and hash of a spec (`hashing`), the sizes
per profile (`sizes`), the registry and its variants (`registry`), one module per experiment family (`parity`,
`stairs`, `parens`, `quarter`, `remedies`, `text`) and what the chapters read (`selections`).

Importing any of them loads the families, so the registry always holds every named experiment.
"""
from . import parens, parity, quarter, remedies, selections, stairs, text  # noqa: F401  (they register)
