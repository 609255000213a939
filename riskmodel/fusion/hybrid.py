"""The hybrid model: mammography embedding + risk factors → absolute risk by year, end to end.

:class:`HybridModel` chains the parts of :mod:`riskmodel.fusion` behind a trained image model::

    cohort (canonical schema) ─► validate ─► FactorEncoder ──────────────┐ factors (imputed, reported)
    exams (assemble_exams)    ─► ImageRiskPredictor.encode ─► embedding ─┤
                                                          └► density probabilities (for a missing density)
    X = [embedding, factors] ─► head (TorchHazardHead | CoxHead | XGBoostHead) ─► H1(1 … 5 y)
                             ─► IncidenceRecalibrator (optional: the site's own incidence)
                             ─► absolute_risk_from_hazard (competing mortality, Gail's λ2 by age and race)
                             ─► risk_1y … risk_5y, risk at the requested horizon (≤ 5 years)

Matching women to exams: the cohort column ``key`` (default ``exam_id``) holds, for each woman,
the value of the exams column ``exam_key`` (default ``exam_id``: the key
:func:`~riskmodel.imaging.assemble_exams` gives each exam, its DICOM AccessionNumber or, where
that is blank, its StudyInstanceUID). Keys are compared as text (``0012`` stays ``0012``; a
numeric ``12.0`` is ``12``). A key that several exam rows share names no exam: the woman gets
status ``no_exam`` with a message naming the clash. A model saved before ``exam_id`` was this key
kept its saved ``exam_key`` (``accession_number``), which new exams tables still carry.

Women without a usable exam (no key, a key not in the exams, or no view that could be read)
get status ``no_exam``, or with ``fallback="factors"`` a risk from the *factors-only head*: a
second head of the same kind, fitted at :meth:`HybridModel.fit` on the same women with the
embedding columns left out (and a missing density imputed from the training frequencies, since
there is no image to read it from). Those rows have status ``ok`` and a message saying that the
fallback was used.

The saved form (:meth:`HybridModel.save`, :func:`load_hybrid`) is a folder::

    image/          the image model: a riskmodel.bundle (safetensors + JSON + its own manifest)
    fusion.json     FactorEncoder state, head and factors-only head (to_dict), recalibrator,
                    matching keys, the image bundle's digest, a training summary
    manifest.json   format tag and version, SHA-256 and size of fusion.json

Nothing is pickled. Loading checks the manifest and the folder's contents first, then
fusion.json's hash, then loads (and verifies) the image bundle and checks that its digest is
the one the fusion head was fitted on (the on-disk format: :mod:`riskmodel.fusion.persist`).

See ``docs/fusion.md`` for what each input does and what the model is not for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from riskmodel.fusion.absolute import IncidenceRecalibrator, absolute_risk_from_hazard
from riskmodel.fusion.factors import IMPUTED_COLUMNS, FactorEncoder
from riskmodel.fusion.heads import CoxHead, TorchHazardHead, head_from_dict
from riskmodel.fusion.persist import FORMAT_VERSION, STATE_FORMAT, read_hybrid, write_hybrid
from riskmodel.inference import check_fallback, cohort_exam_keys, exam_key_text, match_exams, read_exams
from riskmodel.jsonstate import BundleFormatError, jsonable
from riskmodel.models.core import prepare_and_score
from riskmodel.schema import ValidatedCohort, match_columns, validate
from riskmodel.survival import YEARS, check_time_event

__all__ = ["FALLBACKS", "MAX_HORIZON", "YEARS", "HybridModel", "HybridResult", "load_hybrid", "read_exams"]

#: Longest projection (years) the hybrid model makes.
MAX_HORIZON = float(YEARS[-1])
#: Youngest and oldest ages scored: Gail's mortality tables run from 20 to 90, and every woman
#: gets ``risk_5y``, so ``age + 5 <= 90``.
MIN_AGE, MAX_AGE = 20.0, 85.0
#: What :meth:`HybridModel.predict` does for a woman without a usable exam.
FALLBACKS = ("none", "factors")



@dataclass
class _ExamFeatures:
    """Per cohort row: whether she has a usable exam, its features, and what to say about it."""

    usable: np.ndarray  # (n,) bool
    exam_id: np.ndarray  # (n,) object, "" where no exam matched
    n_views: np.ndarray  # (n,) int
    embedding: np.ndarray  # (n, K) float32 image features (embedding and/or image risk), NaN rows where not usable
    density_proba: np.ndarray  # (n, 4) float64, NaN rows where not available
    note: np.ndarray  # (n,) object: why unusable, or view problems of a usable exam ("" if none)


@dataclass
class HybridResult:
    """Per-row outputs of :meth:`HybridModel.score`; arrays of shape ``(n,)``.

    ``risk`` is at the row's horizon, ``risk_<k>y`` at k years, all absolute (competing mortality)
    and NaN where not scored. ``exam_used``: the ``exam_id`` of the exams row used (``""`` if none;
    named so as not to replace the cohort's own ``exam_id`` key); ``n_views``: its views
    read; ``imputed``: the kinds of imputation used for the row (names of
    :data:`~riskmodel.fusion.IMPUTED_COLUMNS` joined by ``";"``); ``fallback``: True where the
    factors-only head scored the row.
    """

    risk: np.ndarray
    risk_1y: np.ndarray
    risk_2y: np.ndarray
    risk_3y: np.ndarray
    risk_4y: np.ndarray
    risk_5y: np.ndarray
    exam_used: np.ndarray
    n_views: np.ndarray
    imputed: np.ndarray
    fallback: np.ndarray


def _interpolate(cum_hazard: np.ndarray, grid: Sequence[float]) -> np.ndarray:
    """Cumulative hazards at ``grid`` (years ≤ 5) from their values at years 1 … 5, linear in between
    (constant hazard within each year) and from 0 at time 0."""
    knots = np.column_stack([np.zeros(cum_hazard.shape[0]), cum_hazard])
    g = np.asarray(grid, dtype=np.float64)
    k = np.clip(np.floor(g).astype(np.intp), 0, len(YEARS) - 1)
    frac = g - k
    return knots[:, k] + frac * (knots[:, k + 1] - knots[:, k])


def _risk_at(cum_hazard: np.ndarray, age: np.ndarray, race: np.ndarray, horizon: np.ndarray,
             mortality: str) -> np.ndarray:
    """Absolute risk at each row's horizon (≤ 5 years) from its cumulative hazards at years 1 … 5.

    The breast-cancer hazard is constant within each year, so adding the horizon as one more knot
    splits a year without changing the integral; :func:`absolute_risk_from_hazard` integrates exactly with
    Gail's competing mortality on the refined grid.
    """
    out = np.full(cum_hazard.shape[0], np.nan)
    for h in np.unique(horizon[np.isfinite(horizon)]):
        rows = horizon == h
        grid = sorted({float(y) for y in YEARS if y < h} | {float(h)})
        risk = absolute_risk_from_hazard(_interpolate(cum_hazard[rows], grid), age[rows], race[rows], years=grid,
                             mortality=mortality)
        out[rows] = risk[:, grid.index(float(h))]
    return out


# ---------------------------------------------------------------------------- the model


#: What the fusion head can see of the image (``HybridModel(image_features=...)``).
IMAGE_FEATURES = ("embedding", "risk", "embedding+risk")


class HybridModel(BaseEstimator):
    """Image embedding + risk factors → absolute breast-cancer risk at 1 … 5 years.

    A scikit-learn estimator (``get_params``, ``clone``; :class:`sklearn.exceptions.NotFittedError`
    before :meth:`fit`) and a :class:`~riskmodel.models.base.RiskModel` (:meth:`prepare`,
    :meth:`assess`), so :func:`riskmodel.predict_risk` scores it like every other model.

    Parameters:
        image_model: a trained :class:`riskmodel.inference.ImageRiskPredictor` (or the path of its
            bundle, loaded with :func:`riskmodel.load_image_model`). It provides the exam embedding
            and, from its auxiliary head, density probabilities for women whose BI-RADS density is
            unknown.
        head: an unfitted survival head with ``fit(X, time, event)``,
            ``predict_cumulative_hazard(X, years)`` and ``to_dict()`` (:class:`TorchHazardHead`,
            the default with its default settings, :class:`CoxHead` or :class:`XGBoostHead`). It
            is cloned at fit; a :class:`CoxHead` is told which columns are the embedding. It
            must be able to predict to 5 years (Cox and xgboost heads: training follow-up of 5
            years or more).
        factors: factor groups for the :class:`~riskmodel.fusion.FactorEncoder` (None: every
            group with known values in the training cohort).
        fallback_head: the unfitted head for the factors-only fallback; default a clone of
            ``head`` (a Cox head without embedding columns).
        recalibrator: a fitted :class:`~riskmodel.fusion.IncidenceRecalibrator` with yearly
            horizons 1 … 5, or None; see also :meth:`recalibrate`.
        mortality: ``"gail"`` (competing mortality from Gail's tables, default) or ``"none"``
            (net risk ``1 − exp(−H1)``).
        image_features: what the head sees of the image: ``"embedding"`` (the ``D``-dimensional
            exam embedding, default), ``"risk"`` (one column: the image network's own, uncalibrated
            five-year log cumulative hazard ``log(−log(1 − r5))``, a supervised one-number summary
            that needs far fewer cancers to fit than an embedding), or ``"embedding+risk"``.

    Attributes (after :meth:`fit` or :func:`load_hybrid`):
        encoder_: the fitted :class:`~riskmodel.fusion.FactorEncoder`.
        head_, fallback_head_: the fitted heads on ``[embedding, factors]`` and on factors only.
        recalibrator_: the :class:`IncidenceRecalibrator` in use, or None.
        key_, exam_key_: the cohort and exams columns that match women to exams.
        embedding_dim_: ``D``, the image model's embedding size.
        fit_summary_: counts of the training rows used and left out, and why.
    """

    name = "hybrid"
    required_columns = ("age",)
    #: :class:`~riskmodel.models.base.RiskModel` protocol: ``predict_risk`` passes ``exams=`` (and the
    #: image-reading options) to :meth:`prepare`; projections end at :data:`MAX_HORIZON` years.
    inputs = ("exams",)
    max_horizon = MAX_HORIZON
    #: Columns :func:`riskmodel.predict_risk` always reports for this model (others with details=True).
    output_columns = tuple(f"risk_{k}y" for k in YEARS)

    def __init__(self, image_model: Any, head: Any = None, factors: Sequence[str] | None = None, *,
                 fallback_head: Any = None, recalibrator: IncidenceRecalibrator | None = None,
                 mortality: str = "gail", image_features: str = "embedding"):
        if isinstance(image_model, (str, os.PathLike)):
            from riskmodel.mirai.adapter import load_image_bundle

            image_model = load_image_bundle(image_model)  # riskmodel's image bundle or an imported Mirai
        if not hasattr(image_model, "encode") or not hasattr(image_model, "model"):
            raise TypeError("image_model must be a riskmodel.inference.ImageRiskPredictor (load_image_model) or "
                            f"the path of an image bundle, got {type(image_model).__name__}")
        for name, h in (("head", head), ("fallback_head", fallback_head)):
            if h is not None and not all(hasattr(h, m) for m in ("fit", "predict_cumulative_hazard", "to_dict")):
                raise TypeError(f"{name} must be a survival head with fit, predict_cumulative_hazard and to_dict "
                                f"(TorchHazardHead, CoxHead, XGBoostHead), got {type(h).__name__}")
        if mortality not in ("gail", "none"):
            raise ValueError(f"mortality={mortality!r}: choose 'gail' or 'none'")
        if image_features not in IMAGE_FEATURES:
            raise ValueError(f"image_features={image_features!r}: choose one of {IMAGE_FEATURES}")
        self.image_model = image_model
        self.head = head
        self.factors = factors
        self.fallback_head = fallback_head
        self.recalibrator = recalibrator
        self.mortality = mortality
        self.image_features = image_features
        if recalibrator is not None:
            self.recalibrator_ = _check_recalibrator(recalibrator)

    def __repr__(self) -> str:
        """What the model is and, once fitted, what it was fitted on, e.g.
        ``HybridModel(head=CoxHead, image_features='risk', fitted on 6000 women (90 breast cancers), 12 features)``."""
        fitted = hasattr(self, "head_")
        head = type(self.head_ if fitted else self.head or TorchHazardHead()).__name__
        text = f"HybridModel(head={head}, image_features={self.image_features!r}"
        if not fitted:
            return text + ", not fitted)"
        summary = getattr(self, "fit_summary_", {})
        n_features = len(summary.get("feature_names", ())) or "?"
        return (text + f", fitted on {summary.get('n_used', '?')} women ({summary.get('n_events', '?')} breast "
                f"cancers), {n_features} features)")

    @property
    def embedding_dim(self) -> int:
        """``D``: the size of the image model's exam embedding."""
        dim = getattr(self.image_model, "embedding_dim", None)  # Mirai's predictor says it; riskmodel's has a config
        return int(dim if dim is not None else self.image_model.model.config.embedding_dim)

    @property
    def image_dim(self) -> int:
        """Columns of image features the head sees (``D``, 1 or ``D + 1``; see ``image_features``)."""
        return (self.embedding_dim if "embedding" in self.image_features else 0) + (
            1 if "risk" in self.image_features else 0)

    def _image_names(self) -> list[str]:
        names = [f"emb_{i:03d}" for i in range(self.embedding_dim)] if "embedding" in self.image_features else []
        return names + (["image_log_cumhaz_5y"] if "risk" in self.image_features else [])

    def _image_block(self, enc: Any, j: np.ndarray) -> np.ndarray:
        """The image feature columns for encoded exams ``j`` (see ``image_features``)."""
        parts = []
        if "embedding" in self.image_features:
            parts.append(enc.embedding[j].astype(np.float64))
        if "risk" in self.image_features:
            r5 = np.clip(enc.raw_risk[j, -1].astype(np.float64), 1e-7, 1 - 1e-7)
            parts.append(np.log(-np.log1p(-r5))[:, None])
        return np.hstack(parts)

    def _check_fitted(self) -> None:
        """Raises scikit-learn's NotFittedError (a ValueError) before :meth:`fit` or :func:`load_hybrid`."""
        check_is_fitted(self, "head_", msg="this %(name)s is not fitted: call fit(cohort, exams) or load one with "
                                           "load_hybrid")

    # ------------------------------------------------------------------ exams

    def exam_keys(self, data: pd.DataFrame, key: str | None = None) -> np.ndarray:
        """Each row's exam key as text (``""`` where blank), from the cohort column ``key``.

        Raises:
            ValueError: the column is missing.
        """
        return cohort_exam_keys(data, key or getattr(self, "key_", "exam_id"),
                                getattr(self, "exam_key_", "exam_id"), "hybrid")

    def _exam_features(self, keys: np.ndarray, wanted: np.ndarray, exams: pd.DataFrame, exam_key: str,
                       **reading: Any) -> _ExamFeatures:
        """Match rows to exams and run the image model on the exams of the ``wanted`` rows only (or read
        them from ``exams`` when it is an :class:`~riskmodel.inference.EncodedExams`); ``reading``:
        ``batch_size``, ``cache_dir``, ``num_workers``, ``progress``."""
        found = match_exams(self.image_model, keys, wanted, exams, exam_key, getattr(self, "key_", "exam_id"),
                            **reading)
        n = len(keys)
        out = _ExamFeatures(usable=found.usable, exam_id=found.exam_id, n_views=found.n_views,
                            embedding=np.full((n, self.image_dim), np.nan, np.float64),
                            density_proba=np.full((n, 4), np.nan), note=found.note)
        if found.encoding is not None:
            out.embedding[found.rows] = self._image_block(found.encoding, np.arange(len(found.rows)))
            out.density_proba[found.rows] = found.encoding.density_proba
        return out

    # ------------------------------------------------------------------ fit

    def fit(self, cohort: pd.DataFrame, exams: pd.DataFrame | str | os.PathLike[str], *, key: str = "exam_id",
            exam_key: str = "exam_id", batch_size: int = 4, cache_dir: str | os.PathLike[str] | None = None,
            num_workers: int = 0, progress: bool = False) -> HybridModel:
        """Fit the factor encoder, the fusion head and the factors-only head.

        Women are used when their row passes the canonical schema (and the Gail model's rules,
        if the Gail factors are encoded) and they have a usable exam; the others are counted in
        :attr:`fit_summary_`. The image model is not changed.

        Args:
            cohort: one row per woman in the canonical schema, with ``time`` (years from the
                exam) and ``event`` (0 censored, 1 invasive breast cancer, 2 other death), and the
                column ``key``.
            exams: an exams table or DICOM folder (see :func:`read_exams`).
            key: cohort column with each woman's exam key.
            exam_key: exams column with the same keys (``exam_id``: the accession number, else the
                study UID, as :func:`riskmodel.imaging.assemble_exams` writes it).
            batch_size, cache_dir, num_workers, progress: passed to
                :meth:`~riskmodel.inference.ImageRiskPredictor.encode`.

        Returns:
            self.

        Raises:
            ValueError: a column is missing, no woman is usable, labels of a used woman are not
                valid, or the head cannot reach 5 years.
        """
        if not isinstance(cohort, pd.DataFrame):
            raise TypeError(f"cohort must be a pandas DataFrame, got {type(cohort).__name__}")
        missing = [c for c in ("time", "event", key) if c not in cohort.columns]
        if missing:
            raise ValueError(f"cohort lacks column(s) {missing}: fit needs time, event and the exam key {key!r}")
        exams = read_exams(exams)
        v = validate(cohort, required=("age",))
        keys = exam_key_text(cohort[key])
        self.key_, self.exam_key_ = key, exam_key
        feats = self._exam_features(keys, v.ok, exams, exam_key, batch_size=batch_size, cache_dir=cache_dir,
                                    num_workers=num_workers, progress=progress)
        use = v.ok & feats.usable
        if not use.any():
            raise ValueError(f"no woman can be used: {int((~v.ok).sum())} row(s) fail the canonical schema and "
                             f"{int((v.ok & ~feats.usable).sum())} have no usable exam (first: "
                             f"{next((m for m in feats.note if m), 'n/a')})")
        encoder = FactorEncoder(factors=self.factors)
        encoder.fit(v.frame[use])
        rejected = np.zeros(len(cohort), dtype=bool)
        rejected[np.flatnonzero(use)] = encoder.rejected_rows(v.frame[use])
        if rejected.any():
            use &= ~rejected
            if not use.any():
                raise ValueError("no woman can be used: every row with an exam is rejected by the Gail model's rules")
            encoder.fit(v.frame[use])
        time, event = check_time_event(cohort["time"][use], cohort["event"][use], name="cohort",
                                       index=cohort.index[use])
        factors_x, imputed = encoder.transform(v.frame[use], density_proba=feats.density_proba[use],
                                               return_imputed=True)
        x = np.hstack([feats.embedding[use].astype(np.float64), factors_x])
        head = clone(self.head) if self.head is not None else TorchHazardHead()
        if isinstance(head, CoxHead):  # PCA on the embedding; a single image-risk column is used as it is
            head.set_params(embedding_columns=slice(0, self.embedding_dim) if "embedding" in self.image_features
                            else None)
        template = self.fallback_head if self.fallback_head is not None else self.head
        fallback = clone(template) if template is not None else TorchHazardHead()
        if isinstance(fallback, CoxHead):
            fallback.set_params(embedding_columns=None)
        head.fit(x, time, event)
        fallback.fit(encoder.transform(v.frame[use]), time, event)
        for name, h, xx in (("head", head, x[:1]), ("fallback head", fallback, factors_x[:1])):
            try:
                h.predict_cumulative_hazard(xx, YEARS)
            except ValueError as exc:
                raise ValueError(f"the {name} cannot predict to {YEARS[-1]} years, which the hybrid model reports: "
                                 f"{exc}") from None
        self.encoder_, self.head_, self.fallback_head_ = encoder, head, fallback
        self.embedding_dim_ = self.embedding_dim
        self.recalibrator_ = _check_recalibrator(self.recalibrator) if self.recalibrator is not None else None
        self.fit_summary_ = {
            "n_rows": len(cohort), "n_used": int(use.sum()), "n_schema_rejected": int((~v.ok).sum()),
            "n_without_exam": int((v.ok & ~feats.usable).sum()), "n_gail_rejected": int(rejected.sum()),
            "n_events": int((event == 1).sum()), "n_other_deaths": int((event == 2).sum()),
            "n_density_from_image": int(imputed["density_from_image"].sum()),
            "feature_names": self._image_names() + list(encoder.feature_names_),
            "head": type(head).__name__, "fallback_head": type(fallback).__name__,
        }
        return self

    # ------------------------------------------------------------------ recalibration

    def recalibrate(self, cohort: pd.DataFrame, exams: pd.DataFrame | str | os.PathLike[str], site_incidence: Any,
                    *, extrapolate: bool = False, batch_size: int = 4, cache_dir: str | os.PathLike[str] | None = None,
                    num_workers: int = 0) -> HybridModel:
        """Rescale the model's hazards to a site's own age-specific incidence.

        Fits an :class:`~riskmodel.fusion.IncidenceRecalibrator` on the hybrid head's predictions
        for a reference cohort of the site (women with a usable exam whose rows pass the schema),
        which every later prediction (fallback rows too) then goes through. Calling it again
        replaces the previous recalibration (it is measured on the head's own predictions).

        Args:
            cohort, exams: the site's reference cohort (canonical schema, with the exam key) and
                its exams.
            site_incidence: the site's rates by attained-age band, as for
                :class:`~riskmodel.fusion.IncidenceRecalibrator`.
            extrapolate: use the nearest band for ages outside the bands (else those women get
                status ``out_of_range`` at prediction).

        Returns:
            self.
        """
        self._check_fitted()
        v = validate(cohort, required=("age",))
        age = v.column("age")
        wanted = v.ok & (age >= MIN_AGE) & (age <= MAX_AGE)
        feats = self._exam_features(self.exam_keys(cohort), wanted, read_exams(exams), self.exam_key_,
                                    batch_size=batch_size, cache_dir=cache_dir, num_workers=num_workers,
                                    progress=False)
        use = wanted & feats.usable
        if use.any():
            use[np.flatnonzero(use)] = ~self.encoder_.rejected_rows(v.frame[use])
        if not use.any():
            raise ValueError("recalibrate: no woman of the reference cohort has a usable exam and a valid row")
        h = self._head_hazard(v.frame[use], feats.embedding[use], feats.density_proba[use])
        self.recalibrator_ = IncidenceRecalibrator(site_incidence, years=list(map(float, YEARS)),
                                                   extrapolate=extrapolate).fit(h, age[use])
        self.recalibrator = self.recalibrator_
        return self

    def _head_hazard(self, frame: pd.DataFrame, embedding: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """The fusion head's cumulative hazards at YEARS for rows with an exam."""
        factors_x = self.encoder_.transform(frame, density_proba=proba)
        return self.head_.predict_cumulative_hazard(np.hstack([embedding.astype(np.float64), factors_x]), YEARS)

    # ------------------------------------------------------------------ prediction

    def prepare(self, data: pd.DataFrame, *, exams: Any, fallback: str = "none", batch_size: int = 4,
                cache_dir: str | os.PathLike[str] | None = None, num_workers: int = 0,
                progress: bool = False) -> dict[str, Any]:
        """The exams and each woman's exam key, for :meth:`assess` (what :func:`riskmodel.predict_risk` calls).

        Args:
            data: the cohort, canonical column names, with the key column (``key_``).
            exams: the exams (:func:`read_exams`: a table, a DICOM folder, a table file, or an
                :class:`~riskmodel.inference.EncodedExams` of this model's image predictor).
            fallback: ``"none"`` or ``"factors"`` (see the module docstring).
            batch_size, cache_dir, num_workers, progress: image reading, as for :meth:`fit`.

        Raises:
            ValueError: an unknown ``fallback``, no key column, or unusable exams.
        """
        check_fallback(fallback, FALLBACKS)
        exams = read_exams(exams)
        return {"keys": self.exam_keys(data), "exams": exams, "fallback": fallback,
                "reading": {"batch_size": batch_size, "cache_dir": cache_dir, "num_workers": num_workers,
                            "progress": progress}}

    def score(self, cohort: ValidatedCohort, horizon: np.ndarray, *, keys: np.ndarray, exams: pd.DataFrame,
              fallback: str = "none", batch_size: int = 4, cache_dir: str | os.PathLike[str] | None = None,
              num_workers: int = 0, progress: bool = False) -> HybridResult:
        """:meth:`assess` as a :class:`HybridResult` (the name before the RiskModel protocol; ``score`` is
        kept for existing callers)."""
        reading = {"batch_size": batch_size, "cache_dir": cache_dir, "num_workers": num_workers, "progress": progress}
        return HybridResult(**self.assess(cohort, horizon, keys=keys, exams=exams, fallback=fallback, reading=reading))

    def assess(self, cohort: ValidatedCohort, horizon: np.ndarray, *, keys: np.ndarray, exams: pd.DataFrame,
               fallback: str = "none", reading: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """Score validated rows (what :func:`riskmodel.predict_risk` calls), flagging rows it cannot score.

        Args:
            cohort: a validated canonical cohort; rows not ``"ok"`` are skipped and keep their status.
            horizon: years per row, shape ``(n,)`` (NaN where the horizon was unusable).
            keys: ``(n,)`` exam keys as text (:meth:`exam_keys`).
            exams: the exams table (:func:`read_exams`).
            fallback: ``"none"`` or ``"factors"`` (see the module docstring).
            reading: ``batch_size``, ``cache_dir``, ``num_workers``, ``progress``: image reading,
                as for :meth:`fit`.

        Returns:
            The :class:`HybridResult` fields as a dict of ``(n,)`` arrays.
        """
        self._check_fitted()
        check_fallback(fallback, FALLBACKS)
        n = len(cohort)
        age = cohort.column("age")
        cohort.flag((age < MIN_AGE) | (age > MAX_AGE), "out_of_range",
                    f"age={{a}}: the hybrid model covers ages {MIN_AGE:g} to {MAX_AGE:g} (five-year projections "
                    "with Gail's mortality tables, which end at 90)", a=age)
        cohort.flag(cohort.column("prior_breast_cancer") == 1, "not_applicable",
                    "prior_breast_cancer=True: the hybrid model predicts a first invasive breast cancer")
        cohort.flag(horizon > MAX_HORIZON + 1e-9, "out_of_range",
                    f"horizon={{h}}: the hybrid model projects at most {MAX_HORIZON:g} years", h=horizon)
        rec = self.recalibrator_
        if rec is not None and not rec.extrapolate:
            lo, hi = float(rec.band_lo_[0]), float(rec.band_hi_[-1])
            cohort.flag((age < lo) | (age + MAX_HORIZON > hi + 1e-9), "out_of_range",
                        f"age={{a}}: the site incidence used for recalibration covers ages {lo:g} to {hi:g}", a=age)
        ok = cohort.ok
        if ok.any():
            rows = np.flatnonzero(ok)
            bad = self.encoder_.rejected_rows(cohort.frame.iloc[rows])
            mask = np.zeros(n, dtype=bool)
            mask[rows[bad]] = True
            cohort.flag(mask, "invalid", "n_biopsies={nb}, atypical_hyperplasia={ah}, age_at_menarche={m}, "
                        "age_at_first_birth={f}: rejected by the Gail model's rules (the Gail factors are inputs of "
                        "this hybrid model)", nb=cohort.column("n_biopsies"), ah=cohort.column("atypical_hyperplasia"),
                        m=cohort.column("age_at_menarche"), f=cohort.column("age_at_first_birth"))
        ok = cohort.ok
        feats = self._exam_features(np.asarray(keys, dtype=object), ok, exams, self.exam_key_, **(reading or {}))
        with_exam = ok & feats.usable
        without = ok & ~feats.usable
        use_fallback = without if fallback == "factors" else np.zeros(n, dtype=bool)
        if fallback == "none":
            cohort.status[without] = "no_exam"
            cohort.message[without] = feats.note[without]
        else:
            cohort.message[without] = [f"{m}; scored with the factors-only fallback model (no image)"
                                       for m in feats.note[without]]
        cohort.message[with_exam] = feats.note[with_exam]  # "" or the views that could not be read
        cum = np.full((n, len(YEARS)), np.nan)
        imputed = pd.DataFrame(False, index=range(n), columns=list(IMPUTED_COLUMNS))
        if with_exam.any():
            frame = cohort.frame.iloc[np.flatnonzero(with_exam)]
            factors_x, imp = self.encoder_.transform(frame, density_proba=feats.density_proba[with_exam],
                                                     return_imputed=True)
            x = np.hstack([feats.embedding[with_exam].astype(np.float64), factors_x])
            cum[with_exam] = self.head_.predict_cumulative_hazard(x, YEARS)
            imputed.loc[np.flatnonzero(with_exam)] = imp.to_numpy()
        if use_fallback.any():
            frame = cohort.frame.iloc[np.flatnonzero(use_fallback)]
            factors_x, imp = self.encoder_.transform(frame, return_imputed=True)
            cum[use_fallback] = self.fallback_head_.predict_cumulative_hazard(factors_x, YEARS)
            imputed.loc[np.flatnonzero(use_fallback)] = imp.to_numpy()
        scored = with_exam | use_fallback
        yearly = np.full((n, len(YEARS)), np.nan)
        risk = np.full(n, np.nan)
        if scored.any():
            race = cohort.column("race")
            h = cum[scored]
            if rec is not None:
                h = rec.transform(h, age[scored])
            yearly[scored] = absolute_risk_from_hazard(h, age[scored], race[scored], years=list(map(float, YEARS)),
                                           mortality=self.mortality)
            risk[scored] = _risk_at(h, age[scored], race[scored], np.asarray(horizon, dtype=np.float64)[scored],
                                    self.mortality)
        flags = imputed.to_numpy()
        names = np.array(IMPUTED_COLUMNS, dtype=object)
        imputed_text = np.array([";".join(names[f]) if s else "" for f, s in zip(flags, scored, strict=True)],
                                dtype=object)
        return {"risk": risk, **{f"risk_{k}y": yearly[:, i] for i, k in enumerate(YEARS)},
                "exam_used": feats.exam_id, "n_views": np.where(scored & ~use_fallback, feats.n_views, 0),
                "imputed": imputed_text, "fallback": use_fallback}

    def predict(self, cohort: pd.DataFrame, exams: pd.DataFrame | str | os.PathLike[str], *,
                horizon: Any = 5.0, fallback: str = "none", batch_size: int = 4,
                cache_dir: str | os.PathLike[str] | None = None, num_workers: int = 0,
                progress: bool = False) -> pd.DataFrame:
        """Absolute risk for each woman: one row per cohort row, same index and order.

        Args:
            cohort: canonical schema with the exam key column (``key_``).
            exams: exams table or DICOM folder (:func:`read_exams`).
            horizon: years (≤ 5) for the ``risk`` column: a number, a column name, or one value per row.
            fallback: ``"none"`` (status ``no_exam`` without a usable exam) or ``"factors"``.
            batch_size, cache_dir, num_workers, progress: image reading.

        Returns:
            The :func:`riskmodel.predict_risk` output with ``details=True``: ``risk``, ``status``,
            ``message``, ``model``, ``horizon``, ``risk_1y`` … ``risk_5y``, ``exam_used``,
            ``n_views``, ``imputed`` and ``fallback``.
        """
        inputs = {"exams": exams, "fallback": fallback, "batch_size": batch_size, "cache_dir": cache_dir,
                  "num_workers": num_workers, "progress": progress}
        columns = match_columns(cohort) if isinstance(cohort, pd.DataFrame) else None  # warns the caller
        return prepare_and_score(self, cohort, horizon, inputs=inputs, details=True, progress=progress,
                                 columns=columns)

    # ------------------------------------------------------------------ saving

    def to_dict(self) -> dict[str, Any]:
        """The fusion part's JSON-safe state (everything but the image model's weights)."""
        self._check_fitted()
        rec = self.recalibrator_
        return jsonable({
            "format": STATE_FORMAT, "format_version": FORMAT_VERSION,
            "key": self.key_, "exam_key": self.exam_key_, "years": list(YEARS), "mortality": self.mortality,
            "embedding_dim": self.embedding_dim_, "image_features": self.image_features,
            "factor_encoder": self.encoder_.to_dict(), "head": self.head_.to_dict(),
            "fallback_head": self.fallback_head_.to_dict(), "recalibrator": None if rec is None else rec.to_dict(),
            "training": self.fit_summary_,
        }, "fusion")

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False,
             metadata: dict[str, Any] | None = None) -> Path:
        """Write the fitted model as a folder (``image/``, ``fusion.json``, ``manifest.json``).

        Args:
            path: the folder to create; it may exist only if empty or, with ``overwrite=True``, if
                it holds a saved hybrid model and nothing else.
            overwrite: replace a saved hybrid model.
            metadata: free-form JSON metadata stored in ``fusion.json`` under ``"metadata"``.

        The folder is written next to ``path`` under a temporary name and then renamed
        (:func:`riskmodel.fusion.persist.write_hybrid`).

        Raises:
            FileExistsError: ``path`` exists and may not be replaced.
        """
        self._check_fitted()
        return write_hybrid(path, self.to_dict(), self.image_model, overwrite=overwrite, metadata=metadata)


def _check_recalibrator(rec: Any) -> IncidenceRecalibrator:
    if not isinstance(rec, IncidenceRecalibrator) or not hasattr(rec, "ratio_"):
        raise ValueError("recalibrator must be a fitted riskmodel.fusion.IncidenceRecalibrator")
    years = rec.years
    if years is not None and [float(y) for y in years] != [float(y) for y in YEARS]:
        raise ValueError(f"recalibrator: fitted on horizons {list(years)}; the hybrid model uses {list(YEARS)}")
    return rec


def load_hybrid(path: str | os.PathLike[str], *, device: str = "auto") -> HybridModel:
    """Load a hybrid model saved by :meth:`HybridModel.save`, checking every file first.

    The folder is checked by :func:`riskmodel.fusion.persist.read_hybrid` (the manifest, the
    folder's entries and no symbolic link, fusion.json's size by ``stat`` before it is read and its
    SHA-256, the image bundle and its digest); then the fusion state is rebuilt, each head checked
    (shapes, finite and bounded numbers); an error names ``fusion.json`` and the field.

    Args:
        path: the folder.
        device: where the image model runs (``"auto"``: the GPU when there is one).

    Raises:
        riskmodel.bundle.BundleIntegrityError: a file changed, missing or unexpected, or an image
            bundle other than the one the fusion head was fitted on.
        riskmodel.bundle.BundleFormatError: not a saved hybrid model, or unreadable contents.
    """
    saved = read_hybrid(path, device=device)
    model = _from_state(saved.state, saved.image, saved.state_path)
    model.digest_ = saved.digest
    model.path_ = saved.path
    return model


def _from_state(state: dict[str, Any], image: Any, where: Path) -> HybridModel:
    """The fitted :class:`HybridModel` that ``state`` (fusion.json, already checked by
    :func:`~riskmodel.fusion.persist.read_hybrid`) describes, around ``image``; each part checked.

    Raises:
        BundleFormatError: naming ``where`` and the field that cannot be rebuilt.
    """
    field = "years"
    try:
        if list(state["years"]) != list(YEARS):
            raise ValueError(f"years {state['years']!r}; this riskmodel reports {list(YEARS)}")
        field = "mortality/image_features"
        model = HybridModel(image, mortality=state["mortality"],
                            image_features=str(state.get("image_features", "embedding")))
        field = "factor_encoder"
        model.encoder_ = FactorEncoder.from_dict(state["factor_encoder"])
        field = "head"
        model.head_ = head_from_dict(state["head"])
        field = "fallback_head"
        model.fallback_head_ = head_from_dict(state["fallback_head"])
        model.head = clone(model.head_)
        model.fallback_head = clone(model.fallback_head_)
        model.factors = model.encoder_.factors
        field = "recalibrator"
        model.recalibrator_ = (None if state["recalibrator"] is None
                               else _check_recalibrator(IncidenceRecalibrator.from_dict(state["recalibrator"])))
        model.recalibrator = model.recalibrator_
        field = "key/exam_key/embedding_dim"
        model.key_, model.exam_key_ = str(state["key"]), str(state["exam_key"])
        model.embedding_dim_ = int(state["embedding_dim"])
        model.fit_summary_ = dict(state.get("training") or {})
        model.metadata = dict(state.get("metadata") or {})
        if model.embedding_dim_ != model.embedding_dim:
            raise ValueError(f"embedding_dim {model.embedding_dim_} but the image model's is {model.embedding_dim}")
        field = "head"
        n_factors = model.encoder_.n_features_out_
        if model.head_.n_features_in_ != model.image_dim + n_factors:
            raise ValueError(f"the head takes {model.head_.n_features_in_} columns, not image features "
                             f"({model.image_dim}, {model.image_features}) + factors ({n_factors})")
        field = "fallback_head"
        if model.fallback_head_.n_features_in_ != n_factors:
            raise ValueError(f"the factors-only head takes {model.fallback_head_.n_features_in_} columns, not "
                             f"{n_factors}")
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise BundleFormatError(where, f"{field}: cannot rebuild the fusion model: {type(exc).__name__}: "
                                       f"{exc}") from None
    return model
