"""Factorized (spatial x feature) linear mapping from feature maps to neurons (SYSTEM.md §7).

Per neuron: a feature mix (1x1 convolution over the C channels, L2 penalty 1e-4), batch
norm, a spatial map (depthwise convolution over the whole H x W grid, "valid", L2 0.01) and a
bias - a :class:`~v4compact.models.nets.readouts.FactorizedReadout` with batch norm. Recipe (the
paper's final numbers): targets z-scored per neuron; weights initialised from a rank-1 SVD of
each neuron's ridge solution (penalty 6e4, on the channels-last flattened features); Adam
(learning rate 1e-5, Keras' epsilon 1e-7), the gradient clipped per element at 0.5, batch
64; rounds of 10 epochs; after each round the median validation score (r2_ER when raw
repeats are given, raw R^2 otherwise) decides which round's weights are kept. Upstream
runs 100 rounds without patience; ``patience`` stops earlier.

Works on any features: numpy channels-last ``(N, H, W, C)`` (what backbones, model
``activations`` and ensemble ``embeddings`` return; the default) or channels-first
``(N, C, H, W)`` with ``channels_last=False``. Predictions are in the responses' units.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..errors import InvalidInputError
from ..metrics import r2_er, raw_r2
from ..models.nets.readouts import FactorizedReadout

__all__ = ["FactorizedMapping"]

#: Keras' Adam epsilon (PyTorch's default is 1e-8).
KERAS_ADAM_EPS = 1e-7


class FactorizedMapping:
    """Fit a factorized readout from feature maps to neurons, with early stopping.

    Args:
        feature_l2: L2 weight on the feature mixes (upstream 1e-4).
        spatial_l2: L2 weight on the spatial maps (upstream 0.01).
        lr: Adam learning rate (upstream 1e-5).
        clip: per-element gradient clip (upstream 0.5; ``None``: none).
        batch_size: images per step (64).
        epochs_per_round: epochs between two validations (10).
        max_rounds: rounds at most (upstream 100).
        patience: stop after this many rounds without a better validation score
            (``None``: run all rounds, as upstream).
        init_penalty: ridge penalty of the SVD initialisation (upstream 6e4).
        validation_fraction: share of the fitting images held out for validation when no
            validation set is given.
        channels_last: features are ``(N, H, W, C)`` (True) or ``(N, C, H, W)``.
        seed: seed of the validation split and the batch order.
        device: torch device for training.

    Attributes (after :meth:`fit`):
        readout_: the fitted :class:`~v4compact.models.nets.readouts.FactorizedReadout` (eval
            mode), on z-scored targets.
        history_: ``[(round, median validation score)]``; round 0 is the SVD initialisation.
        best_round_: the round whose weights were kept.
        score_name_: ``"r2_er"`` or ``"raw_r2"``.
        response_mean_, response_std_: float64 ``(neurons,)`` z-scoring of the targets.
    """

    def __init__(self, feature_l2: float = 1e-4, spatial_l2: float = 0.01, lr: float = 1e-5,
                 clip: float | None = 0.5, batch_size: int = 64, epochs_per_round: int = 10,
                 max_rounds: int = 100, patience: int | None = None,
                 init_penalty: float = 6e4, validation_fraction: float = 0.125,
                 channels_last: bool = True, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        if max_rounds < 0 or epochs_per_round < 1 or batch_size < 1:
            raise InvalidInputError(
                "max_rounds must be >= 0, epochs_per_round and batch_size >= 1"
            )
        if not 0 < validation_fraction < 1:
            raise InvalidInputError(
                f"validation_fraction must lie in (0, 1), got {validation_fraction}"
            )
        self.feature_l2, self.spatial_l2 = float(feature_l2), float(spatial_l2)
        self.lr, self.clip = float(lr), clip
        self.batch_size, self.epochs_per_round = int(batch_size), int(epochs_per_round)
        self.max_rounds, self.patience = int(max_rounds), patience
        self.init_penalty = float(init_penalty)
        self.validation_fraction = float(validation_fraction)
        self.channels_last, self.seed = bool(channels_last), int(seed)
        self.device = torch.device(device)

    # -- data ---------------------------------------------------------------------------
    def _maps(self, features) -> torch.Tensor:
        """Features -> float32 channels-first tensor ``(N, C, H, W)`` on the device."""
        arr = np.asarray(features, dtype=np.float32)
        if arr.ndim != 4:
            raise InvalidInputError(
                f"features must be feature maps (N, H, W, C) (or (N, C, H, W) with "
                f"channels_last=False), got {arr.shape}"
            )
        x = torch.from_numpy(np.ascontiguousarray(arr))
        x = x.permute(0, 3, 1, 2) if self.channels_last else x
        if x.shape[-1] != x.shape[-2]:
            raise InvalidInputError(f"feature maps must be square, got {tuple(x.shape[-2:])}")
        return x.contiguous().to(self.device)

    @staticmethod
    def _targets(responses, num: int) -> np.ndarray:
        y = np.asarray(responses, dtype=np.float64)
        y = y[:, None] if y.ndim == 1 else y
        if y.ndim != 2 or len(y) != num:
            raise InvalidInputError(
                f"responses must be (images, neurons) with {num} images, got {y.shape}; "
                "transpose (neurons, images) responses with .T"
            )
        return y

    # -- fitting ------------------------------------------------------------------------
    def _svd_init(self, readout: FactorizedReadout, x: torch.Tensor, z: np.ndarray) -> None:
        """Rank-1 SVD of each neuron's ridge solution -> feature mix and spatial map."""
        from sklearn.linear_model import Ridge

        num, channels, size, _ = x.shape
        flat = x.permute(0, 2, 3, 1).reshape(num, -1).cpu().numpy().astype(np.float64)
        coef = Ridge(alpha=self.init_penalty).fit(flat, z).coef_.reshape(
            z.shape[1], size * size, channels)
        u, s, vt = torch.linalg.svd(torch.from_numpy(coef), full_matrices=False)
        root = s[:, :1].sqrt()
        spatial = (u[:, :, 0] * root).reshape(-1, 1, size, size)
        mix = (vt[:, 0, :] * root).reshape(-1, channels, 1, 1)
        with torch.no_grad():
            readout.spatial.weight.copy_(spatial)
            readout.mixing.weight.copy_(mix)
            readout.mixing.bias.zero_()
            readout.spatial.bias.zero_()  # the z-scored targets' mean

    def _score(self, readout: FactorizedReadout, x: torch.Tensor, truth: np.ndarray,
               raw: np.ndarray | None) -> float:
        pred = self._predict_with(readout, x)
        values = r2_er(raw, pred.T) if raw is not None else raw_r2(truth.T, pred.T)
        return float(np.nanmedian(values))

    def _predict_with(self, readout: FactorizedReadout, x: torch.Tensor) -> np.ndarray:
        readout.eval()
        with torch.inference_mode():
            z = torch.cat([readout(x[i:i + 256]) for i in range(0, len(x), 256)])
        return z.double().cpu().numpy() * self.response_std_ + self.response_mean_

    def fit(self, features, responses, val_features=None, val_responses=None,
            val_raw_responses=None) -> FactorizedMapping:
        """Fit on ``features`` / ``responses``, keeping the best round on validation.

        Args:
            features: feature maps ``(N, H, W, C)`` (or channels-first, see the class).
            responses: float ``(N, neurons)`` repeat-averaged responses.
            val_features, val_responses: a validation set; default: a random
                ``validation_fraction`` of the fitting images.
            val_raw_responses: ``(neurons, N_val, repeats)`` single-repeat validation
                responses; when given, rounds are chosen by median r2_ER, else by median raw
                R^2.

        Returns:
            self.
        """
        x = self._maps(features)
        y = self._targets(responses, len(x))
        if val_features is None:
            order = np.random.default_rng(self.seed).permutation(len(x))
            num_val = max(1, int(round(self.validation_fraction * len(x))))
            held, kept = np.sort(order[:num_val]), np.sort(order[num_val:])
            x_val, y_val = x[held], y[held]
            x, y = x[kept], y[kept]
        else:
            x_val = self._maps(val_features)
            y_val = self._targets(val_responses, len(x_val)) if val_responses is not None \
                else np.nanmean(np.asarray(val_raw_responses), axis=2).T
        if val_raw_responses is not None:
            raw_val = np.asarray(val_raw_responses, dtype=np.float64)
            if raw_val.shape[:2] != (y_val.shape[1], len(x_val)):
                raise InvalidInputError(
                    f"val_raw_responses must be (neurons, images, repeats) = "
                    f"({y_val.shape[1]}, {len(x_val)}, ...), got {raw_val.shape}"
                )
        else:
            raw_val = None
        self.score_name_ = "r2_er" if raw_val is not None else "raw_r2"
        self.response_mean_ = y.mean(axis=0)
        self.response_std_ = y.std(axis=0)
        self.response_std_[self.response_std_ == 0] = 1.0
        z = (y - self.response_mean_) / self.response_std_

        torch.manual_seed(self.seed)
        readout = FactorizedReadout(x.shape[1], y.shape[1], size=x.shape[-1], batch_norm=True,
                                    feature_l2=self.feature_l2,
                                    spatial_l2=self.spatial_l2).to(self.device)
        self._svd_init(readout, x, z)
        targets = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        optimizer = torch.optim.Adam(readout.parameters(), lr=self.lr, eps=KERAS_ADAM_EPS)
        generator = torch.Generator().manual_seed(self.seed)
        best = (self._score(readout, x_val, y_val, raw_val), 0, copy.deepcopy(readout.state_dict()))
        self.history_ = [(0, best[0])]
        for round_ in range(1, self.max_rounds + 1):
            readout.train()
            for _ in range(self.epochs_per_round):
                for batch in torch.randperm(len(x), generator=generator).split(self.batch_size):
                    batch = batch.to(self.device)
                    loss = torch.nn.functional.mse_loss(readout(x[batch]), targets[batch])
                    optimizer.zero_grad()
                    (loss + readout.regularizer()).backward()
                    if self.clip is not None:
                        torch.nn.utils.clip_grad_value_(readout.parameters(), self.clip)
                    optimizer.step()
            score = self._score(readout, x_val, y_val, raw_val)
            self.history_.append((round_, score))
            if score > best[0]:
                best = (score, round_, copy.deepcopy(readout.state_dict()))
            elif self.patience is not None and round_ - best[1] >= self.patience:
                break
        readout.load_state_dict(best[2])
        self.readout_, self.best_round_ = readout.eval(), best[1]
        return self

    def predict(self, features) -> np.ndarray:
        """Predicted responses, float64 ``(N, neurons)``, in the responses' units."""
        if not hasattr(self, "readout_"):
            raise InvalidInputError("this FactorizedMapping is not fitted yet; call fit() first")
        x = self._maps(features)
        want = (self.readout_.mixing.in_channels, self.readout_.size)
        if (x.shape[1], x.shape[-1]) != want:
            raise InvalidInputError(
                f"features have {x.shape[1]} channels on a {x.shape[-1]}-pixel grid, the "
                f"mapping was fitted on {want[0]} channels, {want[1]} pixels"
            )
        return self._predict_with(self.readout_, x)
