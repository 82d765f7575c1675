"""The networks: the common interface :class:`~.base.V4Model`, the Keras-exact layers, the
five-layer compact core, the readouts, :class:`~.compact.CompactModel` (one neuron),
:class:`~.shared.SharedCompactModel` (a factorized head), the trainable
:class:`~.stack.CompactStack`, the weights a file is read into (:mod:`.weights`) and the
MAC counts (:mod:`.macs`). They import the architecture's facts and the predict path, never
an engine, a file format or a teacher."""
