"""A trained ensemble's run folder read back: the members at their best validation score and
their backbone (:func:`load_trained_ensemble`).

``v4compact train ensemble`` (:func:`v4compact.training.ensemble.train_ensemble`) writes the
folder; this module owns what is read from it, so evaluation and the figures open a run
without importing the training code:

    run.json                      ``{"config": {...}, ...}``: the training settings
    members/member<k>.pt          ``{"architecture": EnsembleMember kwargs, "state_dict": ...}``

Outputs of trained members are in z-scored units (members are trained on z-scored responses).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ...errors import DataNotFoundError
from ..nets.weights import load_weights_only
from .backbones import Backbone, load_backbone
from .ensemble import Ensemble, EnsembleMember

__all__ = ["MEMBERS_DIR", "RUN_FILE", "describe_run", "is_run_dir", "load_trained_ensemble",
           "member_file", "run_backbone"]

#: The run's settings (and, once finished, its summary).
RUN_FILE = "run.json"
#: The folder of the members at the best validation score (the result).
MEMBERS_DIR = "members"


def member_file(folder: Path, index: int) -> Path:
    """Member ``index``'s file in a folder of members."""
    return folder / f"member{index}.pt"


def is_run_dir(path) -> bool:
    """True when ``path`` is a folder written by ``v4compact train ensemble``."""
    try:
        return (Path(path) / RUN_FILE).is_file()
    except (TypeError, OSError):
        return False


def run_backbone(spec: str, feature_size: int, device, data_dir) -> Backbone:
    """A run's backbone (its ``backbone`` setting), its maps average-pooled to
    ``feature_size`` when larger."""
    backbone = load_backbone(spec, device=device, data_dir=data_dir)
    if backbone.output_shape[1] > feature_size:
        backbone = load_backbone(spec, device=device, data_dir=data_dir, pool_to=feature_size)
    return backbone


def load_trained_ensemble(run_dir: str | os.PathLike, device: torch.device | str = "cpu",
                          data_dir: str | os.PathLike | None = None) -> Ensemble:
    """The members of a training run (at their best validation score) with their backbone.

    Args:
        run_dir: a folder written by ``v4compact train ensemble``.
        device: torch device.
        data_dir: data directory (for a model-core backbone).

    Returns:
        An :class:`~v4compact.models.teachers.ensemble.Ensemble` in eval mode; its
        ``model_id`` is ``"run:<folder name>"``. Map its members' embeddings to neurons with
        :func:`v4compact.mapping.ensemble.ensemble_ridge_predictions`.

    Raises:
        DataNotFoundError: not a run folder, or no member saved yet.
        CorruptDataError: a member file that cannot be read.
    """
    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise DataNotFoundError(f"{run_dir} is not a training run ({RUN_FILE} missing); "
                                "train one with 'v4compact train ensemble --out DIR'")
    config = json.loads(run_file.read_text())["config"]
    files = sorted((run_dir / MEMBERS_DIR).glob("member*.pt"),
                   key=lambda p: int(p.stem.removeprefix("member")))
    if not files:
        raise DataNotFoundError(f"{run_dir} has no saved members yet ({MEMBERS_DIR}/ is "
                                "empty); let the run pass one validation")
    members = []
    for path in files:
        saved = load_weights_only(path, device, kind="member file", fix="train the run again")
        member = EnsembleMember(**saved["architecture"])
        member.load_state_dict(saved["state_dict"])
        members.append(member.to(device).eval())
    backbone = run_backbone(config["backbone"], int(config["feature_size"]), device, data_dir)
    return Ensemble(backbone, members, model_id=f"run:{run_dir.name}").to(device)


def describe_run(run_dir: str | os.PathLike) -> str:
    """One line naming a training run for figures: folder, members, preset, backbone."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / RUN_FILE).read_text())["config"]
    width = "" if config["width"] == 512 else f" of width {config['width']}"
    return (f"trained run '{run_dir.name}': {config['members']} members{width}, preset "
            f"{config['preset']}, {config['epochs']} epochs, backbone {config['backbone']}")
