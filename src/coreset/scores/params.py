"""Declared selector parameters: the type and allowed values of each, checked before any work.

A selector declares its parameters in its ``@register(..., params={...})`` line with the rules of
:mod:`coreset.rules` (the same vocabulary as the keys of params.yaml, re-exported here);
:func:`coreset.scores.registry.validate_params` applies them to a recipe's params when
``params.yaml`` is read, so a typo fails in seconds, not after download, pretrain and embed.
Every rule rejects bools where numbers are expected (YAML ``true`` is not 1) and non-finite floats.
"""

from __future__ import annotations

from coreset.rules import Bool, Choice, Float, Int, Rule, check
from coreset.rules import RuleError as ParamError

__all__ = ["BATCH_SIZE", "MAX_RATIO", "MODELS", "POSITIVE", "Bool", "Choice", "Float", "Int",
           "ParamError", "Rule", "check"]

# Rules shared by several selectors.
MAX_RATIO = Float(0.0, 1.0, open_low=True)  # the longest greedy order: ceil(max_ratio * n_c) picks
MODELS = Choice(("all", "first"))  # average over every pretrained model, or the first only
BATCH_SIZE = Int(1)
POSITIVE = Float(0.0, open_low=True)
