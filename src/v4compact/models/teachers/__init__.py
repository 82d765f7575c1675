"""The teachers: task-driven backbones (:mod:`.trunks`: ResNet50 / VGG19 and their published
weights; :mod:`.backbones`: preprocessing, feature extraction, model cores as backbones) and
the ensemble model (:mod:`.ensemble`). They import the networks, never a file format."""
