"""Imports every selector module so that its ``@register`` lines run. Add new modules here."""

from coreset.scores import (  # noqa: F401
    backprop,
    baseline,
    boundary,
    coverage,
    external,
    geometry,
    gradient_matching,
    graph,
    importance,
    influence,
    prototypes,
    submodular,
    trajectory,
    uncertainty,
)
