"""Fast inference over many compact models: the fused :class:`~.population.CompactPopulation`
(block-diagonal groups built from ``fuse()``, :mod:`.fused`), the per-machine choice of its
group size (:mod:`.tuning`) and the kept per-core thread pool (:mod:`.cores`). They import
the networks, never a file format or a teacher."""
