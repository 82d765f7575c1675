"""Model files: the release's five formats read into state dicts (:mod:`.keras_io`, with
:mod:`.keras_files`, :mod:`.port_files` and :mod:`.convert`), ``.keras`` writing
(:mod:`.keras_writer`), ONNX / safetensors / TorchScript export (:mod:`.export`,
:mod:`.onnx`) and the zoo families' loaders (:mod:`.loaders`). They import the networks and
engines, never a teacher."""
