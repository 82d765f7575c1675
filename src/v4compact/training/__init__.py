"""Training: the ensemble model on V4 sessions, distillation and pruning of compact models.

Modules (imported on demand, so ``import v4compact.training`` stays light):

- :mod:`~v4compact.training.runtime` - processes (torchrun, gloo / NCCL), seeds, atomic
  checkpoints and exact resume, metrics log and curves, progress bars: shared by every job;
- :mod:`~v4compact.training.ensemble` - training ensemble members on recorded sessions
  (SYSTEM.md §6), presets ``upstream`` and ``modern``;
- :mod:`~v4compact.training.teachers`, :mod:`~v4compact.training.corpus` - what compact models
  are distilled from (any images -> responses map, its responses cached) and on (image
  shards streamed through the one image path);
- :mod:`~v4compact.training.distill`, :mod:`~v4compact.training.prune`,
  :mod:`~v4compact.training.recipe` - many students in one pass (SYSTEM.md §9), pruning and
  retraining (§10), ``make_compact`` (see docs/distillation.md);
- :mod:`~v4compact.training.made` - a finished run's made models read back as records (the
  explorer lists them: ``v4compact serve --made RUN``).
"""
