"""The paper's tables and figures, regenerated from the repository's DVC experiments.

    python -m coreset.experiments.report [TABLE ...] [--set KEY=VALUE ...] [--out plots/report]

Modules: ``experiments`` (dvc exp show -> per-seed results), ``tables`` (mean +- std, bold,
average rank; markdown/CSV/LaTeX), ``figures`` (PNG), ``analyses`` (overlap, windows),
``specs`` (what each paper table compares), ``build`` (writes the files), ``cli``.
"""
