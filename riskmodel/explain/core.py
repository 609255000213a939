"""Explain exams: per view saliency (several methods), asymmetry and view contributions, on the DICOM grid.

>>> from riskmodel.explain import explain                                       # doctest: +SKIP
>>> [ex] = explain(riskmodel.load_image_model("bundle/"), exams.head(1))          # doctest: +SKIP
>>> ex.views["L-CC"].maps["gradcam"].shape == ex.views["L-CC"].shape            # doctest: +SKIP
True

Each exam is read twice: once as the model reads it (:class:`~riskmodel.imaging.ExamDataset`, the
same preprocessing as ``predict``) and once at full resolution with
:func:`~riskmodel.imaging.read_mammogram` (the grid the maps are registered onto, and the picture
under the overlays). Exams are explained one at a time (:func:`iter_explanations`), so memory is
that of one exam's views.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.explain.maps import METHODS, PAIRS, asymmetry, saliency, view_contributions
from riskmodel.explain.register import to_dicom_grid
from riskmodel.explain.target import ExplainTarget, native_target

__all__ = ["ExamExplanation", "ViewExplanation", "as_target", "check_methods", "explain", "iter_explanations"]


@dataclass
class ViewExplanation:
    """One view of an explained exam.

    Attributes:
        slot: ``"L-CC"``, ``"L-MLO"``, ``"R-CC"`` or ``"R-MLO"``.
        path: the DICOM file.
        shape: ``(rows, columns)`` of the file's stored image.
        flipped: the reader mirrored the stored image to put the chest wall at column 0.
        pixels: float32 (rows, columns) in [0, 1], the file's image in its stored orientation.
        maps: method → float32 (rows, columns) saliency on the stored grid (≥ 0).
        model_maps: method → float32 (H, W) saliency over the model's input (canonical frame).
        asymmetry: float32 (rows, columns) asymmetry map of this view's pair, on this view's grid
            (None when the other side's view of the pair is absent).
        contribution: risk at the horizon with all views minus risk with this view masked.
    """

    slot: str
    path: str
    shape: tuple[int, int]
    flipped: bool
    pixels: np.ndarray = field(repr=False)
    maps: dict[str, np.ndarray] = field(repr=False)
    model_maps: dict[str, np.ndarray] = field(repr=False)
    asymmetry: np.ndarray | None = field(repr=False)
    contribution: float


@dataclass
class ExamExplanation:
    """The explanation of one exam at one horizon.

    Attributes:
        exam_id: the exams table's ``exam_id``.
        status: ``"ok"``, or ``"no_views"`` when no view could be read (nothing else is filled).
        message: views that were missing or unreadable, and why (``""`` if none).
        year: the horizon explained (whole years).
        risk: the network's (uncalibrated) risk at ``year``; NaN when ``status`` is not ok.
        calibrated_risk: the bundle's calibrated risk at ``year`` (NaN without a calibrator).
        views: slot → :class:`ViewExplanation`, present views only.
        asymmetry: pair (``"CC"``, ``"MLO"``) → ``{"score": float, "side_score": {"L": .., "R": ..}}``.
        asymmetry_score: the exam's score, the largest pair score (NaN without a complete pair).
        images, mask: the model's input, float32 (4, H, W) and bool (4,) (for faithfulness checks).
    """

    exam_id: str
    status: str
    message: str
    year: int
    risk: float = float("nan")
    calibrated_risk: float = float("nan")
    views: dict[str, ViewExplanation] = field(default_factory=dict, repr=False)
    asymmetry: dict[str, dict[str, Any]] = field(default_factory=dict)
    asymmetry_score: float = float("nan")
    images: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (no arrays): status, risks, per-view contributions, asymmetry."""
        return {"exam_id": self.exam_id, "status": self.status, "message": self.message, "year": self.year,
                "risk": _num(self.risk), "calibrated_risk": _num(self.calibrated_risk),
                "views": {s: {"path": v.path, "shape": list(v.shape), "flipped": v.flipped,
                              "contribution": _num(v.contribution),
                              "peak": {m: [int(i) for i in np.unravel_index(int(np.argmax(a)), a.shape)]
                                       for m, a in v.maps.items()}}
                          for s, v in self.views.items()},
                "asymmetry": {p: {"score": _num(a["score"]),
                                  "side_score": {k: _num(x) for k, x in a["side_score"].items()}}
                              for p, a in self.asymmetry.items()},
                "asymmetry_score": _num(self.asymmetry_score)}


def _num(x: float) -> float | None:
    """A float for JSON: None for NaN."""
    return None if x is None or not np.isfinite(x) else float(x)


def check_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """Method names from ``"gradcam,ig"`` or a sequence, checked and de-duplicated in order.

    Raises:
        ValueError: none given, or an unknown name (the message lists :data:`~riskmodel.explain.maps.METHODS`).
    """
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else [str(m) for m in methods]
    names = [m for m in dict.fromkeys(names) if m]
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise ValueError(f"methods {bad or names!r}: choose one or more of {', '.join(METHODS)}")
    return tuple(names)


def as_target(model: Any) -> tuple[ExplainTarget, Any]:
    """``(ExplainTarget, calibrator or None)`` for an :class:`ExplainTarget` or an
    :class:`~riskmodel.inference.ImageRiskPredictor` (anything with ``model``, ``preprocessing``, ``device``).

    Raises:
        TypeError: another kind of object.
    """
    if isinstance(model, ExplainTarget):
        return model, None
    if all(hasattr(model, a) for a in ("model", "preprocessing", "device")) and hasattr(model.model, "encoder"):
        model.model.eval()
        return native_target(model.model, model.preprocessing, model.device), getattr(model, "calibrator", None)
    raise TypeError(f"cannot explain a {type(model).__name__}: give an ImageRiskPredictor (riskmodel.load_image_model) "
                    "or a riskmodel.explain.ExplainTarget")


def iter_explanations(model: Any, exams: pd.DataFrame, *, years: int = 5, methods: str | Sequence[str] = METHODS,
                      steps: int = 16) -> Iterator[ExamExplanation]:
    """:func:`explain`, one exam at a time (memory of one exam), in the order of ``exams``."""
    from riskmodel.imaging import ExamDataset
    from riskmodel.imaging.exams import VIEW_ORDER

    target, calibrator = as_target(model)
    names = check_methods(methods)
    if isinstance(years, bool) or not isinstance(years, (int, np.integer)) or not 1 <= years <= target.n_years:
        raise ValueError(f"years={years!r}: the model gives whole-year risks for 1 … {target.n_years} years")
    if not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps={steps!r}: integrated gradients needs at least 2 steps")
    data = ExamDataset(exams, image_size=target.image_size, voi=target.voi)
    for i in range(len(data)):
        item = data[i]
        ex = ExamExplanation(exam_id=item["exam_id"], status="ok", message=item["errors"], year=int(years))
        if not bool(item["mask"].any()):
            ex.status = "no_views"
            yield ex
            continue
        yield _explain_one(target, calibrator, ex, item, data.exams.iloc[i], names, steps, VIEW_ORDER)


def _explain_one(target: ExplainTarget, calibrator: Any, ex: ExamExplanation, item: dict, row: pd.Series,
                 names: tuple[str, ...], steps: int, view_order: Sequence[str]) -> ExamExplanation:
    """Fill ``ex`` for one readable exam (``item`` from the dataset, ``row`` its exams row)."""
    from riskmodel.imaging import read_mammogram

    images = item["images"][None].to(target.device)
    mask = item["mask"][None].to(target.device)
    model_maps = {m: saliency(target, images, mask, ex.year, m, steps=steps) for m in names}
    full, contrib = view_contributions(target, images, mask)
    ex.risk = float(full[ex.year - 1])
    if calibrator is not None:
        ex.calibrated_risk = float(calibrator.predict(full[None].astype(np.float64))[0, ex.year - 1])
    pairs = asymmetry(target, images, mask)
    ex.asymmetry = {p: {"score": a["score"], "side_score": a["side_score"]} for p, a in pairs.items()}
    ex.asymmetry_score = max((a["score"] for a in pairs.values()), default=float("nan"))
    ex.images, ex.mask = item["images"][:, 0].numpy(), item["mask"].numpy()
    pair_of = {slot: p for p, slots in PAIRS.items() for slot in slots}
    for k, slot in enumerate(view_order):
        if not ex.mask[k]:
            continue
        m = read_mammogram(str(row[slot]), voi=target.voi)
        stored = m.pixels[:, ::-1] if m.flipped else m.pixels
        pair = pairs.get(pair_of[k])
        ex.views[slot] = ViewExplanation(
            slot=slot, path=str(row[slot]), shape=tuple(m.shape), flipped=m.flipped,
            pixels=np.ascontiguousarray(stored), model_maps={n: model_maps[n][k] for n in names},
            maps={n: to_dicom_grid(model_maps[n][k], m.shape, m.flipped) for n in names},
            asymmetry=None if pair is None else to_dicom_grid(pair["map"], m.shape, m.flipped),
            contribution=float(contrib[k, ex.year - 1]))
    return ex


def explain(model: Any, exams: pd.DataFrame, *, years: int = 5, methods: str | Sequence[str] = METHODS,
            steps: int = 16) -> list[ExamExplanation]:
    """Explain the ``years``-year image risk of each exam: one :class:`ExamExplanation` per row, same order.

    Args:
        model: an :class:`~riskmodel.inference.ImageRiskPredictor` (``riskmodel.load_image_model``) or an
            :class:`ExplainTarget` (another image model with a per-view encoder).
        exams: an exams table (:func:`riskmodel.imaging.assemble_exams`: ``exam_id`` and a path per view).
        years: the horizon, whole years in 1 … the model's years (default 5).
        methods: saliency methods, names of :data:`~riskmodel.explain.maps.METHODS` (``"gradcam,ig"`` or a list).
        steps: integrated-gradients steps.

    Returns:
        A list of :class:`ExamExplanation`; an exam with no readable view has status ``"no_views"``.

    Raises:
        ValueError: an unknown method, a horizon outside the model's years, or an exams table without the
            view columns.
    """
    return list(iter_explanations(model, exams, years=years, methods=methods, steps=steps))
