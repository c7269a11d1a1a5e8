"""Lightning callbacks: the contrastive evaluation protocol and its report writers."""

from callbacks.contrastive_evaluation import ContrastiveEvaluation

__all__ = ["ContrastiveEvaluation"]
