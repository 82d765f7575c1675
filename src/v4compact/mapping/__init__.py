"""Mappings from model features to neurons: cross-validated ridge (fast variant, §7)."""

from .ridge import DEFAULT_PENALTIES, RidgeMapping

__all__ = ["DEFAULT_PENALTIES", "RidgeMapping"]
