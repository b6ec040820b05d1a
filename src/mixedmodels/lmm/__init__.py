"""The linear mixed model's stages (``LinearMixedModel``) and its frozen fitted state."""

from .fitted import FittedModel
from .model import LinearMixedModel

__all__ = ["FittedModel", "LinearMixedModel"]
