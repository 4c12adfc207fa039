"""Selectors by family; ``coreset.scores.registry`` maps a name to its implementation."""
