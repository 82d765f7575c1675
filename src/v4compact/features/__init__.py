"""Backbone features computed once per image and kept on disk (:mod:`.cache`).

Training an ensemble visits every session's images many times; the backbone (ResNet50 or a
model core) is the expensive part and does not change, so its features are computed once
and memory-mapped from then on.
"""

from .cache import FeatureCache, session_features

__all__ = ["FeatureCache", "session_features"]
