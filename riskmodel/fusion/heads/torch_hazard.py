"""(a) :class:`TorchHazardHead`: an MLP into Mirai's additive-hazard layer, trained with the masked BCE."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np

from riskmodel.fusion.heads.base import (
    SurvivalHead,
    check_positive_float,
    check_positive_int,
    check_state,
    check_time_event,
    check_X,
    state_array,
    state_n_features,
)
from riskmodel.survival import ipcw_weights, survival_targets

__all__ = ["TorchHazardHead"]

_INCREMENTS = ("softplus", "relu")


@cache
def _hazard_layer(increment: str) -> type:
    """:class:`riskmodel.nn.AdditiveHazardHead` (ReLU increments) or its softplus variant."""
    import torch

    from riskmodel.nn.hazard import AdditiveHazardHead

    if increment == "relu":
        return AdditiveHazardHead

    class SoftplusHazardHead(AdditiveHazardHead):
        """``base + cumsum(softplus(hazard(z)))``: every year adds a positive hazard."""

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.base(z) + torch.cumsum(torch.nn.functional.softplus(self.hazard(z)), dim=-1)

    return SoftplusHazardHead


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op torch threads (None: unchanged), restoring the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _intercept_shift(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray, iterations: int = 25) -> float:
    """The shift δ of every logit that minimises the weighted BCE (1-D Newton; the loss is convex in δ)."""
    delta = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(logits + delta)))
        grad = float((weights * (p - labels)).sum())
        hess = float((weights * p * (1.0 - p)).sum())
        if hess <= 0:
            break
        step = grad / hess
        delta -= step
        if abs(step) < 1e-10:
            break
    return delta


def _stratified_split(positive: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train, valid)`` row indices, ``fraction`` of the positives and of the others held out."""
    rng = np.random.default_rng(seed)
    valid = []
    for rows in (np.flatnonzero(positive), np.flatnonzero(~positive)):
        valid.append(rng.permutation(rows)[: math.ceil(fraction * rows.size)])
    held = np.zeros(positive.size, dtype=bool)
    held[np.concatenate(valid)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


class TorchHazardHead(SurvivalHead):
    """MLP into an additive-hazard layer, trained with the censoring-aware masked BCE.

    ``logit_k = base(z) + Σ_{j ≤ k} g(inc_j(z))`` for years k = 1 … ``n_years``, with
    ``z = MLP(standardised X)`` (or ``z`` = standardised X when ``hidden == 0``), ``g`` softplus
    (default) or ReLU (Mirai's :class:`riskmodel.nn.AdditiveHazardHead`, whose parameters the
    layer reuses), and ``P(cancer by k) = sigmoid(logit_k)``, so ``H1(k) = −log(1 −
    sigmoid(logit_k)) = softplus(logit_k)``. Between whole years (and from 0 to 1) ``H1`` is
    interpolated linearly, i.e. the hazard is constant within each year. Horizons beyond
    ``n_years`` are refused.

    **Why softplus by default.** With ReLU an increment whose pre-activation is negative adds
    exactly zero hazard for that woman that year and passes no gradient. On tabular inputs
    with a few hundred cancers (linear head) this happened for 35–70 % of women in years 3–5
    and the mean 5-year risk came out 4–19 % too low; softplus increments are always positive.

    Training:

    * targets: year k's label is known for a woman diagnosed by k or followed ≥ k years
      (:func:`riskmodel.training.losses.survival_targets`); the loss is
      :func:`~riskmodel.training.losses.masked_bce`;
    * ``ipcw=True`` weights each known entry by ``1 / G``, the Kaplan–Meier probability of
      remaining uncensored (censoring = event 0 or 2) to her diagnosis or to year k
      (:func:`riskmodel.survival.ipcw_weights`). Without it the known-status subset
      over-represents cancers and the net risk comes out too high (by 6–11 % at 5 years on the
      synthetic cohorts). The weights assume censoring independent of ``X``;
    * AdamW with a cosine learning-rate decay over ``epochs``; the output layer starts at the
      marginal yearly risks;
    * ``early_stopping=True`` holds out ``validation_fraction`` of the women (stratified on
      cancer) and keeps the epoch with the lowest validation loss, stopping after ``patience``
      epochs without improvement. Without it the default MLP over-fits a few hundred cancers
      within tens of epochs (on 20,000 synthetic women with ~400 cancers, Uno's C was 0.70
      after 200 epochs against 0.77 with early stopping; 0.54 at ``lr=1e-2``);
    * finally the common intercept (the base bias) is refitted on all rows with the rest fixed
      (a 1-D convex problem), so the mean predicted risk matches the data
      (calibration in the large) whatever epoch was kept.

    CPU; the same ``seed``, data and ``n_threads`` give the same model.

    Parameters:
        hidden: width of the one hidden ReLU layer; 0 for a linear model.
        epochs: (maximum) passes over the data.
        lr: initial learning rate (AdamW).
        weight_decay: AdamW weight decay.
        n_years: number of yearly horizons modelled.
        seed: seed for initialisation, the validation split and shuffling.
        batch_size: rows per optimisation step.
        ipcw: weight the known-status entries by inverse probability of censoring.
        increment: ``"softplus"`` or ``"relu"`` (Mirai's layer).
        early_stopping, validation_fraction, patience: see above.
        n_threads: torch intra-op threads while fitting and predicting (restored afterwards);
            1 is fastest for networks this small; None leaves torch's setting.

    Attributes:
        n_features_in_: ``p``.
        mean_, scale_: ``(p,)`` standardisation of ``X`` (scale 1 for constant columns).
        net_: the fitted ``torch.nn.Module``.
        loss_curve_, validation_curve_: mean training / validation loss per epoch run.
        best_epoch_: the epoch kept (0-based).
    """

    def __init__(self, hidden: int = 64, epochs: int = 200, lr: float = 1e-3, weight_decay: float = 1e-4,
                 n_years: int = 5, seed: int = 0, batch_size: int = 1024, ipcw: bool = True,
                 increment: str = "softplus", early_stopping: bool = True, validation_fraction: float = 0.1,
                 patience: int = 10, n_threads: int | None = 1):
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.n_years = n_years
        self.seed = seed
        self.batch_size = batch_size
        self.ipcw = ipcw
        self.increment = increment
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.n_threads = n_threads

    def _build(self, p: int) -> Any:
        from torch import nn

        out = _hazard_layer(self.increment)(p if self.hidden == 0 else self.hidden, self.n_years)
        if self.hidden == 0:
            return out
        return nn.Sequential(nn.Linear(p, self.hidden), nn.ReLU(), out)

    def _check_params(self) -> None:
        check_positive_int("hidden", self.hidden, allow_zero=True)
        check_positive_int("epochs", self.epochs)
        check_positive_int("n_years", self.n_years)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("seed", self.seed, allow_zero=True)
        check_positive_float("lr", self.lr)
        check_positive_float("weight_decay", self.weight_decay, allow_zero=True)
        if self.increment not in _INCREMENTS:
            raise ValueError(f"increment={self.increment!r}: choose one of {_INCREMENTS}")
        check_positive_int("patience", self.patience)
        if self.n_threads is not None:
            check_positive_int("n_threads", self.n_threads)
        frac = check_positive_float("validation_fraction", self.validation_fraction)
        if frac >= 0.5:
            raise ValueError(f"validation_fraction={self.validation_fraction!r}: must be in (0, 0.5)")

    def fit(self, X: Any, time: Any, event: Any) -> TorchHazardHead:
        """Fit on ``X`` ``(n, p)``, ``time`` ``(n,)`` years, ``event`` ``(n,)`` 0/1/2. Returns self."""
        self._check_params()
        x = check_X(X)
        t, e = check_time_event(time, event, x.shape[0])
        with _torch_threads(self.n_threads):
            return self._fit(x, t, e)

    def _fit(self, x: np.ndarray, t: np.ndarray, e: np.ndarray) -> TorchHazardHead:
        import torch

        from riskmodel.training.losses import masked_bce

        n, p = x.shape
        labels, known = survival_targets(t, e, self.n_years)
        if self.ipcw:
            weights = np.column_stack([ipcw_weights(t, e, k) for k in range(1, self.n_years + 1)])
        else:
            weights = known.astype(np.float64)
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale < 1e-12] = 1.0
        xs = torch.from_numpy(((x - mean) / scale).astype(np.float32))
        yl = torch.from_numpy(labels)
        yw = torch.from_numpy(weights.astype(np.float32))
        # Marginal risk per year (IPCW-weighted share of positives) to start the output layer there.
        with np.errstate(invalid="ignore", divide="ignore"):
            p_k = (labels * weights).sum(axis=0) / np.maximum(weights.sum(axis=0), 1e-12)
        p_k = np.maximum.accumulate(np.clip(p_k, 1e-4, 0.5))
        start = np.log(p_k / (1.0 - p_k))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = self._build(p)
            gen = torch.Generator().manual_seed(self.seed)
        head = net if self.hidden == 0 else net[-1]
        with torch.no_grad():
            first = 0.05
            head.base.bias.fill_(float(start[0]) - first)
            head.base.weight.mul_(0.1)
            head.hazard.weight.zero_()
            inc = np.maximum(np.diff(start, prepend=start[0] - first), first)
            if self.increment == "softplus":
                inc = np.log(np.expm1(inc))  # softplus⁻¹
            head.hazard.bias.copy_(torch.from_numpy(inc.astype(np.float32)))
        train, valid = np.arange(n), np.zeros(0, dtype=np.intp)
        if self.early_stopping:
            train, valid = _stratified_split(e == 1, self.validation_fraction, self.seed)
            if not ((e[train] == 1).any() and (e[valid] == 1).any()):
                raise ValueError(f"event: {int((e == 1).sum())} breast-cancer event(s) are too few to hold some out "
                                 "for early stopping; set early_stopping=False")
        tr_idx = torch.from_numpy(train)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps_per_epoch = math.ceil(train.size / self.batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs * steps_per_epoch)
        curve: list[float] = []
        val_curve: list[float] = []
        best = (math.inf, 0, None)  # (validation loss, epoch, state)
        for epoch in range(self.epochs):
            net.train()
            perm = tr_idx[torch.randperm(train.size, generator=gen)]
            total = 0.0
            for s in range(0, train.size, self.batch_size):
                idx = perm[s : s + self.batch_size]
                loss = masked_bce(net(xs[idx]), yl[idx], yw[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * idx.numel()
            curve.append(total / train.size)
            if valid.size:
                net.eval()
                with torch.no_grad():
                    v = torch.from_numpy(valid)
                    val_curve.append(float(masked_bce(net(xs[v]), yl[v], yw[v])))
                if val_curve[-1] < best[0]:
                    best = (val_curve[-1], epoch, {k: w.detach().clone() for k, w in net.state_dict().items()})
                elif epoch - best[1] >= self.patience:
                    break
        if best[2] is not None:
            net.load_state_dict(best[2])
        net.eval()
        # Calibration in the large: refit the common intercept (base bias) with the rest fixed.
        head = net if self.hidden == 0 else net[-1]
        with torch.no_grad():
            delta = _intercept_shift(net(xs).double().numpy(), labels, weights)
            head.base.bias.add_(float(delta))
        self.net_ = net
        self.mean_ = mean
        self.scale_ = scale
        self.loss_curve_ = curve
        self.validation_curve_ = val_curve
        self.best_epoch_ = best[1] if valid.size else len(curve) - 1
        self.n_features_in_ = p
        self._set_training_counts(e)
        return self

    def _max_year(self) -> tuple[float, str]:
        return float(self.n_years), "n_years"

    def predict_logits(self, X: Any) -> np.ndarray:
        """Alias of :meth:`decision_function`: cumulative logits ``(n, n_years)`` at years 1 … ``n_years``
        (non-decreasing along rows)."""
        return self.decision_function(X)

    def _raw_score(self, x: np.ndarray) -> np.ndarray:
        """Cumulative logits ``(n, n_years)`` of checked inputs ``x``."""
        import torch

        xs = ((x - self.mean_) / self.scale_).astype(np.float32)
        out = np.empty((x.shape[0], self.n_years))
        with torch.no_grad(), _torch_threads(self.n_threads):
            for s in range(0, x.shape[0], 65536):
                out[s : s + 65536] = self.net_(torch.from_numpy(xs[s : s + 65536])).double().numpy()
        return out

    def _cumulative_hazard(self, x: np.ndarray, years: np.ndarray) -> np.ndarray:
        knots = np.logaddexp(0.0, self._raw_score(x))  # softplus = −log(1 − sigmoid), (n, Y)
        knots = np.maximum.accumulate(np.column_stack([np.zeros(x.shape[0]), knots]), axis=1)
        grid = np.arange(self.n_years + 1, dtype=np.float64)
        k = np.clip(np.floor(years).astype(np.intp), 0, self.n_years - 1)  # slot of each year
        frac = years - grid[k]
        return knots[:, k] + frac * (knots[:, k + 1] - knots[:, k])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: parameters, standardisation and the network's tensors as nested lists."""
        d = self._state_header()
        d["params"] = self.get_params()
        d["mean"] = self.mean_.tolist()
        d["scale"] = self.scale_.tolist()
        d["state_dict"] = {k: v.detach().cpu().tolist() for k, v in self.net_.state_dict().items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TorchHazardHead:
        """Rebuild a fitted head from :meth:`to_dict`'s output."""
        import torch

        from riskmodel.bundle import check_tensor_shapes, meta_state

        d = check_state(d, cls)
        where = cls.__name__
        head = cls(**d["params"])
        head._check_params()
        p = state_n_features(d, where)
        if not isinstance(d["state_dict"], dict):
            raise ValueError(f"{where}: 'state_dict' must be a JSON object of tensors")
        arrays = {k: state_array(d["state_dict"], k, f"{where} state_dict") for k in d["state_dict"]}
        expected = meta_state(lambda: head._build(p))  # shapes only: nothing allocated before they match
        check_tensor_shapes({k: tuple(v.shape) for k, v in expected.items()}, {k: a.shape for k, a in arrays.items()},
                            f"{where} state_dict")
        net = head._build(p)
        net.load_state_dict({k: torch.tensor(a, dtype=torch.float32) for k, a in arrays.items()})
        net.eval()
        head.net_ = net
        head.mean_ = state_array(d, "mean", where, shape=(p,))
        head.scale_ = state_array(d, "scale", where, shape=(p,))
        if (head.scale_ <= 0).any():
            raise ValueError(f"{where}: 'scale' must be > 0 (standard deviations of the inputs)")
        head.loss_curve_ = []
        head.n_features_in_ = p
        return head
