"""Mirai behind the library's model protocol: :class:`MiraiRiskModel` and :func:`load_mirai_bundle`.

A Mirai bundle (written by :func:`riskmodel.mirai.import_mirai`) is scored like any image bundle::

    riskmodel.predict_risk(women, model="mirai-bundle/", exams="dicoms/")

Each exam's four views are read with Mirai's preprocessing (:func:`riskmodel.imaging.mirai_preprocess.preprocess_view`,
preset ``"dcmtk"`` by default), encoded by Mirai's image encoder, and combined by its view transformer with the
woman's risk factors (:mod:`riskmodel.mirai.risk_factors`: a supplied factor is used, an unknown one is predicted
by the model's own head). The raw probabilities of years 1..5 are calibrated each year on its own with Mirai's
calibrators, as Mirai does; ``monotone=True`` (off by default) makes the calibrated risks non-decreasing over the
years by a running maximum. A view that is missing or unreadable is left out (Mirai itself needs all four) and the
row says which views were used.

:class:`MiraiRiskModel` is an :class:`riskmodel.inference.ImageRiskPredictor`: its :meth:`encode` gives the
exam embedding (Mirai's pooled exam representation, before the risk factors), raw and calibrated risks and the
density head's probabilities, so ``riskmodel embed`` and a :class:`riskmodel.fusion.HybridModel` work on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from riskmodel.bundle import WEIGHTS, BundleFormatError, load_bundle, save_bundle
from riskmodel.inference import MAX_IMAGE_SIDE, MIN_IMAGE_SIDE, ExamEncoding, ImageRiskPredictor
from riskmodel.mirai.calibrator import MiraiCalibration
from riskmodel.mirai.config import RISK_FACTOR_NUM_CLASSES, MiraiConfigError
from riskmodel.mirai.model import SIDE_CODES, VIEW_CODES, MiraiModel
from riskmodel.mirai.risk_factors import COLUMN_KEYS, UNUSED_COLUMNS, encode_risk_factors
from riskmodel.schema import ValidatedCohort

__all__ = ["MIRAI_IMAGE_SIZE", "VIEW_SLOTS", "MiraiEncoding", "MiraiRiskModel", "bundle_image_size",
           "load_image_bundle",
           "load_mirai_bundle"]

#: Mirai's input size (height, width) in pixels.
MIRAI_IMAGE_SIZE: tuple[int, int] = (2048, 1664)
#: The exams table's view columns, in the order they are fed to the model (side, view).
VIEW_SLOTS: tuple[tuple[str, str, str], ...] = (("L-CC", "L", "CC"), ("L-MLO", "L", "MLO"), ("R-CC", "R", "CC"),
                                               ("R-MLO", "R", "MLO"))


@dataclass
class MiraiEncoding(ExamEncoding):
    """:class:`~riskmodel.inference.ExamEncoding` plus what is needed to add risk factors without re-reading images.

    Attributes:
        view_features: ``(n, 4, 512)`` float32, the image encoder's per-view features (zeros where not used).
        views_used: ``(n, 4)`` bool, views that entered the result, in :data:`VIEW_SLOTS` order.
    """

    view_features: np.ndarray = None  # type: ignore[assignment]
    views_used: np.ndarray = None  # type: ignore[assignment]

    def take(self, rows: Any) -> MiraiEncoding:
        """The encoding of the exams at positions ``rows``."""
        j = np.asarray(rows, dtype=np.intp)
        base = super().take(j)
        return MiraiEncoding(**vars(base), view_features=self.view_features[j], views_used=self.views_used[j])


def _read_exam(row: pd.Series, preset: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One exam's views (4, 3, H, W) float32, present mask (4,), and messages ``"<slot>: ..."``."""
    from riskmodel.imaging.mirai_preprocess import preprocess_view

    images = np.zeros((len(VIEW_SLOTS), 3, *size), dtype=np.float32)
    present = np.zeros(len(VIEW_SLOTS), dtype=bool)
    messages = []
    for i, (slot, side, view) in enumerate(VIEW_SLOTS):
        path = row.get(slot)
        if not isinstance(path, (str, os.PathLike)) or str(path) == "":
            messages.append(f"{slot}: missing")
            continue
        try:
            out = preprocess_view(path, preset=preset, size=size)
        except Exception as exc:  # a decoder's error (or any other) masks this view and is reported, never dropped
            messages.append(f"{slot}: {type(exc).__name__}: {exc}")
            continue
        if (out.laterality, out.view) != (side, view):
            messages.append(f"{slot}: the file says {out.laterality}-{out.view}; not used")
            continue
        images[i], present[i] = out.tensor, True
        messages.extend(f"{slot}: {note}" for note in out.notes)
    return images, present, messages


#: ``preprocessing.json`` entry holding the options a saved :class:`MiraiRiskModel` was used with.
OPTIONS_KEY = "riskmodel_options"


class MiraiRiskModel(ImageRiskPredictor):
    """Mirai (:class:`~riskmodel.mirai.model.MiraiModel`) with its calibration, as a
    :class:`~riskmodel.models.base.RiskModel` (name ``"mirai"``, inputs ``("exams",)``, 5 years).

    Args:
        model: the Mirai network.
        calibration: Mirai's per-year calibrators, or None (raw probabilities).
        preprocessing: the bundle's ``preprocessing.json``.
        metadata: the bundle's user metadata.
        device: where the network runs (``"auto"``: the GPU if any).
        preset: Mirai preprocessing preset (:data:`riskmodel.imaging.mirai_preprocess.MIRAI_PRESETS`).
        image_size: (height, width) views are resized to; Mirai's :data:`MIRAI_IMAGE_SIZE` by default.
        monotone: make calibrated risks non-decreasing over the years (running maximum); Mirai does not.
        use_risk_factors: False ignores the cohort's factors (every one predicted: Mirai's released inference).
    """

    name = "mirai"
    #: Cohort columns whose bad values are only reported: all but age, prior_breast_cancer and the keys.
    notes_only_columns = ImageRiskPredictor.notes_only_columns

    def __init__(self, model: MiraiModel, calibration: MiraiCalibration | None = None,
                 preprocessing: Mapping[str, Any] | None = None, metadata: Mapping[str, Any] | None = None,
                 device: str = "auto", *, preset: str = "dcmtk", image_size: tuple[int, int] = MIRAI_IMAGE_SIZE,
                 monotone: bool = False, use_risk_factors: bool = True, config: Mapping[str, Any] | None = None):
        from riskmodel.imaging.mirai_preprocess import MIRAI_PRESETS

        if preset not in MIRAI_PRESETS:
            raise ValueError(f"preset={preset!r}: Mirai's preprocessing presets are {sorted(MIRAI_PRESETS)}")
        super().__init__(model, dict(preprocessing or {}), calibration, dict(metadata or {}), device=device)
        self.preset, self.image_size = preset, (int(image_size[0]), int(image_size[1]))
        self.monotone, self.use_risk_factors = bool(monotone), bool(use_risk_factors)
        self.config = dict(config or {})

    @property
    def n_years(self) -> int:
        """Yearly outputs (Mirai: 5)."""
        return int(self.model.max_followup)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """``risk_1y`` … ``risk_5y``, ``views_used``, ``factors_supplied``, ``factors_predicted``."""
        return (*super().output_columns, "views_used", "factors_supplied", "factors_predicted")

    @property
    def embedding_dim(self) -> int:
        """Width of the exam embedding (the transformer's hidden size)."""
        return int(self.model.transformer.config.hidden_dim)

    @property
    def risk_factor_keys(self) -> tuple[str, ...]:
        """The transformer's risk-factor keys (Mirai's 34), () when it takes none."""
        cfg = self.model.transformer.config
        return tuple(cfg.risk_factor_keys) if cfg.use_risk_factors else ()

    def __repr__(self) -> str:
        calibrated = "calibrated" if self.calibrator is not None else "uncalibrated"
        return (f"MiraiRiskModel({self.n_years} years, {calibrated}, preset {self.preset!r}, images "
                f"{self.image_size[0]}x{self.image_size[1]}, device={self.device})")

    # ------------------------------------------------------------------ network

    def _codes(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        view = torch.tensor([VIEW_CODES[v] for _, _, v in VIEW_SLOTS], device=self.device).expand(batch, -1)
        side = torch.tensor([SIDE_CODES[s] for _, s, _ in VIEW_SLOTS], device=self.device).expand(batch, -1)
        return view, side, torch.zeros_like(view)

    def _head(self, features: torch.Tensor, present: torch.Tensor,
              risk_factors: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """Transformer on per-view features: (raw risk (B, T), embedding (B, H), predicted factors, known (B, K))."""
        view, side, time = self._codes(features.shape[0])
        logits, _, pooled = self.model.transformer(features, present, view, side, time, risk_factors)
        predicted = pooled.risk_factors_predicted
        known = pooled.risk_factors_known
        return (torch.sigmoid(logits).double().cpu().numpy(), pooled.pooled.float().cpu().numpy(),
                None if predicted is None else predicted.float().cpu().numpy(),
                np.zeros((features.shape[0], 0), bool) if known is None else known.cpu().numpy())

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated risks (n, T) for raw ones: Mirai's per-year calibrators, then the running maximum if
        ``monotone``."""
        risk = self.calibrator.predict(raw) if self.calibrator is not None and len(raw) else np.asarray(raw, float)
        return np.maximum.accumulate(risk, axis=1) if self.monotone and len(risk) else risk

    def _density(self, predicted: np.ndarray | None) -> np.ndarray:
        """The risk-factor head's BI-RADS density probabilities (B, 4), NaN without that head/key."""
        keys = self.risk_factor_keys
        if predicted is None or "density" not in keys:
            return np.full((0 if predicted is None else len(predicted), 4), np.nan)
        start = sum(RISK_FACTOR_NUM_CLASSES[k] for k in keys[:keys.index("density")])
        return predicted[:, start:start + 4].astype(np.float64)

    def encode(self, exams: pd.DataFrame, *, batch_size: int = 4, cache_dir: str | Path | None = None,
               progress: bool = False, num_workers: int = 0) -> MiraiEncoding:
        """Run Mirai on every exam of ``exams`` (image-only: every risk factor predicted).

        ``cache_dir`` and ``num_workers`` are accepted for the protocol and not used (views are read in this
        process, one exam at a time). Returns a :class:`MiraiEncoding`, one entry per row of ``exams``.
        """
        n, size = len(exams), self.image_size
        feats = np.zeros((n, len(VIEW_SLOTS), self.model.encoder.image_dim), dtype=np.float32)
        used = np.zeros((n, len(VIEW_SLOTS)), dtype=bool)
        raw = np.full((n, self.n_years), np.nan)
        emb = np.full((n, self.embedding_dim), np.nan, dtype=np.float32)
        dens = np.full((n, 4), np.nan)
        messages = np.full(n, "", dtype=object)
        starts = range(0, n, max(1, int(batch_size)))
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="scoring exams (Mirai)", unit="batch")
        with torch.no_grad():
            for start in starts:
                rows = list(range(start, min(start + max(1, int(batch_size)), n)))
                read = [_read_exam(exams.iloc[r], self.preset, size) for r in rows]
                for r, (_, present, msg) in zip(rows, read, strict=True):
                    used[r], messages[r] = present, "; ".join(msg)
                ok = [i for i, r in enumerate(rows) if used[r].any()]
                if not ok:
                    continue
                images = torch.from_numpy(np.stack([read[i][0] for i in ok])).to(self.device)
                present = torch.from_numpy(np.stack([read[i][1] for i in ok])).to(self.device)
                features = images.new_zeros(len(ok), len(VIEW_SLOTS), self.model.encoder.image_dim)
                features[present] = self.model.encoder(images[present])
                r_ok = [rows[i] for i in ok]
                raw[r_ok], emb[r_ok], predicted, _ = self._head(features, present, None)
                dens[r_ok] = self._density(predicted)
                feats[r_ok] = features.float().cpu().numpy()
        n_views = used.sum(axis=1)
        return MiraiEncoding(exam_id=exams["exam_id"].to_numpy(), n_views=n_views,
                             status=np.where(n_views == 0, "no_views", "ok").astype(object), message=messages,
                             risk=self.calibrate(raw), raw_risk=raw, embedding=emb, density_proba=dens,
                             index=exams.index, view_features=feats, views_used=used)

    def with_risk_factors(self, enc: MiraiEncoding, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw risks (n, T) and which keys were used as supplied (n, K) for encoded exams and factor vectors
        (n, 100) (:func:`riskmodel.mirai.risk_factors.encode_risk_factors`); only the transformer runs again."""
        if len(enc) == 0:
            return np.zeros((0, self.n_years)), np.zeros((0, len(self.risk_factor_keys)), bool)
        with torch.no_grad():
            features = torch.from_numpy(enc.view_features).to(self.device)
            present = torch.from_numpy(enc.views_used).to(self.device)
            factors = torch.from_numpy(np.asarray(vectors, dtype=np.float32)).to(self.device)
            raw, _, _, known = self._head(features, present, factors)
        return raw, known

    # ------------------------------------------------------------------ the RiskModel protocol

    def assess(self, cohort: ValidatedCohort, years: np.ndarray, *, keys: np.ndarray, exams: Any,
               reading: dict[str, Any] | None = None) -> Mapping[str, np.ndarray]:
        """Mirai's risks for validated rows: each woman through her exam and her risk factors.

        Returns the image model's columns (``risk``, ``risk_1y`` … ``risk_5y``, ``exam_used``, ``n_views``)
        plus ``views_used`` (e.g. ``"L-CC,L-MLO,R-CC,R-MLO"``), ``factors_supplied`` and ``factors_predicted``
        (Mirai's keys, comma-separated; ``""`` on rows not scored), each ``(n,)``.
        """
        out = dict(super().assess(cohort, years, keys=keys, exams=exams, reading=reading))
        scored = cohort.ok
        for name in ("views_used", "factors_supplied", "factors_predicted"):
            out[name] = np.where(scored, out.get(name, np.full(len(cohort), "", dtype=object)), "").astype(object)
        return out

    def exam_risks(self, cohort: ValidatedCohort, found: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Calibrated yearly risks (m, Y) of the matched rows with each woman's risk factors, and the columns
        ``views_used``, ``factors_supplied``, ``factors_predicted`` (n,); factor notes go on the rows."""
        n, rows, enc = len(cohort), found.rows, found.encoding
        views = np.full(n, "", dtype=object)
        views[rows] = [",".join(s for (s, _, _), u in zip(VIEW_SLOTS, mask, strict=True) if u)
                       for mask in enc.views_used]
        supplied, predicted = np.full(n, "", dtype=object), np.full(n, "", dtype=object)
        factor_keys = self.risk_factor_keys
        if not factor_keys:
            return enc.risk, {"views_used": views, "factors_supplied": supplied, "factors_predicted": predicted}
        columns = {c: cohort.column(c)[rows] for c in (*COLUMN_KEYS, *UNUSED_COLUMNS)} if self.use_risk_factors \
            else {}
        factors = encode_risk_factors(columns, len(rows), factor_keys)
        raw, known = self.with_risk_factors(enc, factors.vectors)
        if not np.array_equal(known, factors.supplied):  # the pool must use exactly the blocks supplied
            raise RuntimeError("Mirai's risk-factor pool did not use the risk factors supplied")
        supplied[rows], predicted[rows] = factors.supplied_names(factor_keys), factors.predicted_names(factor_keys)
        notes = np.full(n, "", dtype=object)
        notes[rows] = factors.notes
        cohort.note(cohort.ok & (notes != ""), "{note}", note=notes)
        return self.calibrate(raw), {"views_used": views, "factors_supplied": supplied,
                                     "factors_predicted": predicted}

    def save(self, path: str | Path, *, metadata: dict | None = None, overwrite: bool = False) -> Path:
        """Write this model as a Mirai bundle (the same files :func:`riskmodel.mirai.import_mirai` writes), with
        this object's options (preset, image size, monotone, use_risk_factors) in ``preprocessing.json``
        (:data:`OPTIONS_KEY`), which :func:`load_mirai_bundle` applies by default.

        Raises:
            ValueError: the model was not loaded from a Mirai bundle (its ``config`` is not Mirai's).
        """
        config = dict(self.config)
        if config.get("kind") != "mirai":
            raise ValueError("this MiraiRiskModel has no Mirai bundle config (config.kind 'mirai'); load it with "
                             "riskmodel.mirai.load_mirai_bundle to save it")
        if self.calibrator is not None:
            config["calibration"] = self.calibrator.to_dict()
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        options = {"preset": self.preset, "image_size": list(self.image_size), "monotone": self.monotone,
                   "use_risk_factors": self.use_risk_factors}
        return save_bundle(path, state, config=config, preprocessing={**self.preprocessing, OPTIONS_KEY: options},
                           metadata={**self.metadata, **(metadata or {})}, overwrite=overwrite)


def bundle_image_size(preprocessing: Mapping[str, Any], where: Path) -> tuple[int, int]:
    """(height, width) from the bundle's ``preprocessing.json`` ``img_size`` (Mirai's (width, height)), else
    :data:`MIRAI_IMAGE_SIZE`.

    Raises:
        riskmodel.bundle.BundleFormatError: ``img_size`` is not two whole numbers within the reader's limits.
    """
    size = preprocessing.get("img_size")
    if size is None:
        return MIRAI_IMAGE_SIZE
    if not (isinstance(size, list) and len(size) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and MIN_IMAGE_SIDE <= v <= MAX_IMAGE_SIDE for v in size)):
        raise BundleFormatError(where, f"img_size must be [width, height], each a whole number in [{MIN_IMAGE_SIDE}, "
                                       f"{MAX_IMAGE_SIDE}], got {size!r}")
    return int(size[1]), int(size[0])


def load_mirai_bundle(path: str | os.PathLike[str], device: str = "auto", *, preset: str | None = None,
                      image_size: tuple[int, int] | None = None, monotone: bool | None = None,
                      use_risk_factors: bool | None = None) -> MiraiRiskModel:
    """Load a bundle written by :func:`riskmodel.mirai.import_mirai`, every file's SHA-256 checked first.

    Args:
        path: the bundle folder.
        device: where the network runs.
        preset, monotone, use_risk_factors: as for :class:`MiraiRiskModel`; None = as saved by
            :meth:`MiraiRiskModel.save` (:data:`OPTIONS_KEY`), else ``"dcmtk"``, False, True.
        image_size: (height, width) views are resized to; default the bundle's ``img_size`` (Mirai's released
            encoder: 2048 x 1664).

    Raises:
        riskmodel.bundle.BundleError: the bundle is incomplete or altered, not a Mirai bundle, or its weights do
            not fit its config (the message names the file).
    """
    folder = Path(path)

    def check(bundle: Any) -> None:
        if bundle.config.get("kind") != "mirai":
            raise BundleFormatError(folder / "config.json", f"'kind' is {bundle.config.get('kind')!r}, not 'mirai': "
                                                            "not a bundle written by riskmodel import-mirai")

    bundle = load_bundle(folder, check=check)
    try:
        model = MiraiModel.from_bundle_parts(bundle.config, bundle.state_dict)
        calibration = MiraiCalibration.from_dict(bundle.config["calibration"]) if "calibration" in bundle.config \
            else None
    except (MiraiConfigError, ValueError, TypeError, RuntimeError) as exc:
        raise BundleFormatError(folder / WEIGHTS, f"weights and config.json do not describe one Mirai model: "
                                                  f"{exc}") from exc
    saved = bundle.preprocessing.get(OPTIONS_KEY, {})
    saved = saved if isinstance(saved, dict) else {}
    if image_size is None:
        size = saved.get("image_size")
        image_size = bundle_image_size({"img_size": size[::-1]} if isinstance(size, list) else bundle.preprocessing,
                                       folder / "preprocessing.json")
    preset = preset if preset is not None else str(saved.get("preset", "dcmtk"))
    monotone = monotone if monotone is not None else saved.get("monotone") is True
    use_risk_factors = use_risk_factors if use_risk_factors is not None else saved.get("use_risk_factors") is not False
    return MiraiRiskModel(model, calibration, bundle.preprocessing, bundle.metadata.get("user", {}), device=device,
                          preset=preset, image_size=image_size, monotone=monotone, use_risk_factors=use_risk_factors,
                          config=bundle.config)


#: Largest ``config.json`` read to tell a Mirai bundle from riskmodel's own image bundle (bytes).
MAX_CONFIG_PEEK = 16 << 20


def load_image_bundle(path: str | os.PathLike[str], device: str = "auto") -> ImageRiskPredictor:
    """The image model in bundle folder ``path``, of either kind: a Mirai bundle (``config.json`` ``"kind":
    "mirai"``, :func:`load_mirai_bundle`) or riskmodel's own (:func:`riskmodel.load_image_model`).

    Only ``config.json``'s ``kind`` is read to choose (bounded, strict JSON); the chosen loader then checks
    every file's hash before using anything.

    Raises:
        riskmodel.bundle.BundleError: as the chosen loader.
    """
    from riskmodel.inference import load_image_model
    from riskmodel.jsonstate import read_json_file

    config = Path(path) / "config.json"
    if Path(path).is_dir() and config.is_file() and not config.is_symlink():
        if read_json_file(config, MAX_CONFIG_PEEK, "an image bundle has a config.json").get("kind") == "mirai":
            return load_mirai_bundle(path, device=device)
    return load_image_model(path, device=device)
