"""Scoring exams with a trained image model bundle — the three-line API.

>>> model = riskmodel.load_image_model("bundle/")                       # doctest: +SKIP
>>> exams = riskmodel.imaging.assemble_exams(riskmodel.imaging.scan_dicoms("dicoms/"))  # doctest: +SKIP
>>> model.predict(exams)                                                 # doctest: +SKIP

A bundle (see :mod:`riskmodel.bundle`) carries the weights (safetensors), the architecture and
preprocessing (JSON), the per-year calibrators (JSON) and a SHA-256 manifest that is checked
before anything is read. No pickle is involved anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.schema import COLUMNS, ValidatedCohort, is_blank

#: Version of the preprocessing contract written into bundles (image reading + resizing).
PREPROCESSING = "riskmodel.imaging/1"
#: Smallest and largest side (pixels) of the image size a model reads views at. 32 is the smallest
#: the network runs at; 8192 is above the largest mammograms (about 4096 × 5120) and keeps one
#: exam's four float32 views under 1.1 GB.
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 32, 8192
#: Largest architecture values a bundle's ``config.json`` may hold (checked before anything is
#: built): far above any trained Mirai-style model (ResNet-18: widths ≤ 512, 2 blocks a stage).
CONFIG_LIMITS = {"in_channels": 16, "widths": 4096, "blocks": 64, "stages": 8, "embed_dim": 8192,
                 "agg_layers": 48, "agg_heads": 128, "n_years": 30}


def image_preprocessing(image_size: tuple[int, int] | list[int], voi: str = "auto") -> dict[str, Any]:
    """The ``preprocessing`` dict of an :class:`ImageRiskPredictor` (and of its bundle's
    ``preprocessing.json``): how exams must be read for a model trained on them.

    Args:
        image_size: ``(height, width)`` in pixels that each view is resized to (as in the model's
            :class:`~riskmodel.nn.ModelConfig`).
        voi: the DICOM reader's VOI step the model was trained with, one of
            :data:`riskmodel.imaging.dicom.VOI_MODES`.

    Returns:
        ``{"image_size": [height, width], "view_order": [...], "voi": voi}`` with the view order of
        :data:`riskmodel.imaging.exams.VIEW_ORDER`.

    Raises:
        ValueError: ``image_size`` is not two integers in [:data:`MIN_IMAGE_SIDE`,
            :data:`MAX_IMAGE_SIDE`], or ``voi`` is not a known mode.

    >>> image_preprocessing((256, 208), voi="linear")
    {'image_size': [256, 208], 'view_order': ['L-CC', 'L-MLO', 'R-CC', 'R-MLO'], 'voi': 'linear'}
    """
    from riskmodel.imaging.dicom import VOI_MODES
    from riskmodel.imaging.exams import VIEW_ORDER

    size = list(image_size)
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 and MIN_IMAGE_SIDE <= v <= MAX_IMAGE_SIDE for v in size):
        raise ValueError(f"image_size must be (height, width) in whole pixels, each in [{MIN_IMAGE_SIDE}, "
                         f"{MAX_IMAGE_SIDE}], got {image_size!r}")
    if voi not in VOI_MODES:
        raise ValueError(f"voi must be one of {VOI_MODES}, got {voi!r}")
    return {"image_size": [int(v) for v in size], "view_order": list(VIEW_ORDER), "voi": voi}


@dataclass
class ExamEncoding:
    """What the image model says about each exam (:meth:`ImageRiskPredictor.encode`); ``n`` exams.

    Attributes:
        exam_id: ``(n,)`` the exams' ``exam_id``.
        n_views: ``(n,)`` int, views read and used (0: the exam is unusable).
        status: ``(n,)`` ``"ok"`` or ``"no_views"``.
        message: ``(n,)`` str, ``""`` or ``"<slot>: <ErrorClass>: <message>"`` entries joined by ``"; "``.
        risk: ``(n, Y)`` image-only risk by year (calibrated when the bundle has calibrators); NaN rows
            where no view.
        raw_risk: ``(n, Y)`` the network's own risk by year, never calibrated (a smooth score for
            the fusion model's ``image_features="risk"``); NaN rows where no view.
        embedding: ``(n, D)`` float32 exam embedding; NaN rows where no view.
        density_proba: ``(n, 4)`` softmax of the auxiliary density head (BI-RADS a–d); NaN rows where no
            view or when the model has no density head.
        index: the index of the exams frame.
    """

    exam_id: np.ndarray
    n_views: np.ndarray
    status: np.ndarray
    message: np.ndarray
    risk: np.ndarray
    raw_risk: np.ndarray
    embedding: np.ndarray
    density_proba: np.ndarray
    index: pd.Index

    def __len__(self) -> int:
        return len(self.exam_id)

    def take(self, rows: Any) -> ExamEncoding:
        """The encoding of the exams at positions ``rows`` (integer positions, in that order)."""
        j = np.asarray(rows, dtype=np.intp)
        return ExamEncoding(exam_id=self.exam_id[j], n_views=self.n_views[j], status=self.status[j],
                            message=self.message[j], risk=self.risk[j], raw_risk=self.raw_risk[j],
                            embedding=self.embedding[j], density_proba=self.density_proba[j], index=self.index[j])

    @classmethod
    def concat(cls, parts: Sequence[ExamEncoding], index: pd.Index | None = None) -> ExamEncoding:
        """The encodings ``parts`` one after the other (e.g. chunks of a large exam table encoded
        separately), with ``index`` as the result's index (default: the parts' indexes joined).

        Raises:
            ValueError: no parts, parts with different year counts or embedding sizes, or an
                ``index`` of the wrong length.
        """
        parts = list(parts)
        if not parts:
            raise ValueError("ExamEncoding.concat: no encodings to join")
        for name in ("risk", "embedding", "density_proba"):
            widths = {getattr(p, name).shape[1] for p in parts}
            if len(widths) > 1:
                raise ValueError(f"ExamEncoding.concat: the parts' {name} have different widths {sorted(widths)}")
        n = sum(len(p) for p in parts)
        if index is None:
            index = parts[0].index.append([p.index for p in parts[1:]])
        elif len(index) != n:
            raise ValueError(f"ExamEncoding.concat: index has {len(index)} entries for {n} exams")
        fields = ("exam_id", "n_views", "status", "message", "risk", "raw_risk", "embedding", "density_proba")
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}, index=pd.Index(index))


@dataclass(frozen=True, eq=False)  # compared by identity: its fields are tables and a model
class EncodedExams:
    """An exams table with its encoding by one image model, computed once and reused.

    :meth:`ImageRiskPredictor.encode_exams` makes one. A :class:`~riskmodel.fusion.HybridModel`
    built on the same predictor accepts it wherever it takes ``exams`` (``fit``, ``predict``,
    ``recalibrate``, :func:`riskmodel.predict_risk`) and then reads the embeddings, raw risks and
    density probabilities from it instead of running the network again. The hybrid model refuses
    an encoding made by another predictor object.

    Attributes:
        exams: the exams table (one row per exam, as from :func:`riskmodel.imaging.assemble_exams`).
        encoding: ``predictor.encode(exams)``: one entry per row of ``exams``, same order.
        predictor: the :class:`ImageRiskPredictor` that made ``encoding``.
    """

    exams: pd.DataFrame
    encoding: ExamEncoding
    predictor: Any

    def __post_init__(self) -> None:
        if not isinstance(self.exams, pd.DataFrame) or "exam_id" not in self.exams.columns:
            raise ValueError("EncodedExams.exams must be an exams table with an exam_id column")
        if len(self.encoding) != len(self.exams) or not np.array_equal(
                self.encoding.exam_id.astype(str), self.exams["exam_id"].astype(str).to_numpy()):
            raise ValueError(f"EncodedExams: the encoding ({len(self.encoding)} exams) does not match the exams table "
                             f"({len(self.exams)} rows) row for row")

    def __len__(self) -> int:
        return len(self.exams)


# ---------------------------------------------------------------------------- exams in, women matched to them

#: View columns of an exams table, in the order the model reads them.
_VIEW_COLUMNS = ("L-CC", "L-MLO", "R-CC", "R-MLO")
_EXAM_TEXT_COLUMNS = ("exam_id", "study_key", "patient_id", "study_uid", "accession_number", "study_date")


def read_exams(source: pd.DataFrame | str | os.PathLike[str] | EncodedExams) -> pd.DataFrame | EncodedExams:
    """An exams table (one row per exam, a path column per view) from what a caller has.

    Args:
        source: a DataFrame from :func:`riskmodel.imaging.assemble_exams`; an
            :class:`EncodedExams` (returned as it is); a folder of DICOM files
            (scanned with :func:`~riskmodel.imaging.scan_dicoms`, then assembled); or a ``.csv``,
            ``.tsv`` or ``.parquet`` file written by ``riskmodel scan --exams`` (identifier
            columns are read as text, so accession numbers keep their leading zeros; relative view
            paths name files beside the table).

    A table (file or DataFrame) written before ``exam_id`` became the cohort's join key is
    converted, with a warning (:func:`riskmodel.imaging.upgrade_exams`).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: an unknown file type, or a table without ``exam_id`` and the view columns.
    """
    if isinstance(source, EncodedExams):  # already encoded by an image model: checked, kept as it is
        read_exams(source.exams)
        return source
    from riskmodel.imaging import upgrade_exams

    where = "the exams table"
    if isinstance(source, pd.DataFrame):
        exams = source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            from riskmodel.imaging import assemble_exams, scan_dicoms

            exams = assemble_exams(scan_dicoms(path))
        elif path.is_file():
            suffix = path.suffixes[-2] if path.suffix.lower() in (".gz", ".bz2", ".xz", ".zip") and len(
                path.suffixes) > 1 else path.suffix
            suffix = suffix.lower()
            text = dict.fromkeys(_EXAM_TEXT_COLUMNS, str)
            if suffix in (".parquet", ".pq"):
                exams = pd.read_parquet(path)
            elif suffix in (".csv", ".txt", ".tsv"):
                exams = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=text)
            else:
                raise ValueError(f"{path}: unknown exams file type; use a DICOM folder, .csv, .tsv or .parquet")
            from riskmodel.imaging import resolve_view_paths

            exams = resolve_view_paths(exams, path)  # relative view paths name files beside the table
            where = str(path)
        else:
            raise FileNotFoundError(f"{path}: no such exams table or DICOM folder")
    else:
        raise TypeError("exams must be a DataFrame from riskmodel.imaging.assemble_exams, a DICOM folder or the "
                        f"path of an exams table, got {type(source).__name__}")
    missing = [c for c in ("exam_id", *_VIEW_COLUMNS) if c not in exams.columns]
    if missing:
        raise ValueError(f"exams lacks column(s) {missing}; build it with riskmodel.imaging.assemble_exams "
                         "(or 'riskmodel scan --exams')")
    return upgrade_exams(exams, where)


def exam_key_text(values: pd.Series | np.ndarray) -> np.ndarray:
    """Exam keys as stripped text, ``""`` where blank; integral numbers without a decimal part.

    >>> exam_key_text(pd.Series([12.0, None, " A7 "])).tolist()
    ['12', '', 'A7']
    """
    s = pd.Series(values).reset_index(drop=True)
    blank = is_blank(s)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        num = s.to_numpy(dtype=np.float64, na_value=np.nan)
        text = np.array([str(int(v)) if np.isfinite(v) and float(v).is_integer() else str(v) for v in num],
                        dtype=object)
    else:
        text = s.astype(object).map(_one_key_text).to_numpy(dtype=object)
    text[blank] = ""
    return text


def _one_key_text(value: Any) -> str:
    """One key of a text (object) column as text; an integral float among them (``12.0``) as ``12``."""
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def cohort_exam_keys(data: pd.DataFrame, key: str, exam_key: str, model: str) -> np.ndarray:
    """Each cohort row's exam key as text (:func:`exam_key_text`), from the cohort column ``key``.

    Raises:
        ValueError: the column is missing (the message says what ``model`` matches through it).
    """
    if key not in data.columns:
        raise ValueError(f"cohort has no column {key!r}: the {model} model matches each woman to her exam "
                         f"through it (values of the exams column {exam_key!r})")
    return exam_key_text(data[key])


@dataclass
class MatchedExams:
    """Cohort rows matched to exams and what the image model read of them (:func:`match_exams`); ``n`` rows.

    Attributes:
        usable: ``(n,)`` bool, a matched exam with at least one readable view.
        exam_id: ``(n,)`` object, the matched exam's ``exam_id`` (``""`` where none matched).
        n_views: ``(n,)`` int, views read.
        note: ``(n,)`` object, why a wanted row has no usable exam, or the views of a usable exam
            that could not be read (``""`` if nothing to say).
        rows: ``(m,)`` positions of the rows with a matched exam, usable or not.
        encoding: the :class:`ExamEncoding` of those rows' exams, one entry per ``rows`` entry
            (None when ``m == 0``).
    """

    usable: np.ndarray
    exam_id: np.ndarray
    n_views: np.ndarray
    note: np.ndarray
    rows: np.ndarray
    encoding: ExamEncoding | None


def match_exams(predictor: ImageRiskPredictor, keys: np.ndarray, wanted: np.ndarray,
                exams: pd.DataFrame | EncodedExams, exam_key: str, key_name: str, *, batch_size: int = 4,
                cache_dir: str | os.PathLike[str] | None = None, num_workers: int = 0,
                progress: bool = False) -> MatchedExams:
    """Match cohort rows to exams and run ``predictor`` on the exams of the ``wanted`` rows only.

    A row's exam is the exams row whose ``exam_key`` equals the row's key as text. A key that
    several exams rows share matches none of them: the row's note names the clash (never one of
    them picked by a guess). Each needed exam is encoded once, in table order (or read from
    ``exams`` when it is an :class:`EncodedExams` made by ``predictor``).

    Args:
        predictor: the image model.
        keys: ``(n,)`` the rows' keys as text (:func:`cohort_exam_keys`), ``""`` where blank.
        wanted: ``(n,)`` bool, the rows to match (the others are left without an exam and note).
        exams: the exams (:func:`read_exams`).
        exam_key: the exams column holding the keys; ``key_name``: the cohort column (for messages).
        batch_size, cache_dir, num_workers, progress: as for :meth:`ImageRiskPredictor.encode`.

    Raises:
        ValueError: ``exams`` lacks ``exam_key``, or was encoded by another predictor.
    """
    pre = None
    if isinstance(exams, EncodedExams):
        if exams.predictor is not predictor:
            raise ValueError("exams were encoded by another image model than this model's; encode them with "
                             "this model's image predictor (encode_exams) or pass the exams table")
        pre, exams = exams.encoding, exams.exams
    n = len(keys)
    if exam_key not in exams.columns:
        raise ValueError(f"exams has no column {exam_key!r} to match the cohort's exam keys; give exam_key= "
                         "the exams column that holds them")
    ex_keys = exam_key_text(exams[exam_key])
    holders: dict[str, list[int]] = {}
    for i, k in enumerate(ex_keys):
        if k:
            holders.setdefault(k, []).append(i)
    position = {k: rows[0] for k, rows in holders.items() if len(rows) == 1}
    matched = np.array([position.get(k, -1) if (k and wanted[r]) else -1 for r, k in enumerate(keys)], dtype=np.intp)
    needed = np.unique(matched[matched >= 0])
    out = MatchedExams(usable=np.zeros(n, dtype=bool), exam_id=np.full(n, "", dtype=object),
                       n_views=np.zeros(n, dtype=np.int64), note=np.full(n, "", dtype=object),
                       rows=np.zeros(0, dtype=np.intp), encoding=None)
    for r in np.flatnonzero(wanted):
        if not keys[r]:
            out.note[r] = f"{key_name}: missing, so no exam to read"
        elif len(holders.get(keys[r], ())) > 1:
            out.note[r] = _clash_note(exams, holders[keys[r]], f"{key_name}={keys[r]!r}", exam_key)
        elif matched[r] < 0:
            out.note[r] = f"{key_name}={keys[r]!r}: no exam with that {exam_key} in the exams table"
    if needed.size == 0:
        return out
    enc = pre.take(needed) if pre is not None else predictor.encode(
        exams.iloc[needed], batch_size=batch_size, cache_dir=cache_dir, progress=progress, num_workers=num_workers)
    where = {int(p): j for j, p in enumerate(needed)}
    rows = np.flatnonzero(matched >= 0)
    j = np.array([where[int(matched[r])] for r in rows], dtype=np.intp)
    ok = enc.n_views[j] > 0
    out.rows, out.encoding = rows, enc.take(j)
    out.usable[rows] = ok
    out.exam_id[rows] = enc.exam_id[j].astype(str)
    out.n_views[rows] = enc.n_views[j]
    for r, jj, good in zip(rows, j, ok, strict=True):
        msg = str(enc.message[jj])
        if not good:
            out.note[r] = f"exam {enc.exam_id[jj]}: no readable view ({msg or 'no view files'})"
        elif msg:
            out.note[r] = f"exam {enc.exam_id[jj]}: scored on {int(enc.n_views[jj])} of 4 views ({msg})"
    return out


def _clash_note(exams: pd.DataFrame, rows: list[int], what: str, exam_key: str) -> str:
    """Why a woman whose key several exams rows hold (positions ``rows``) is matched to none of them."""
    names = (exams["study_key"].iloc[rows].astype(str).tolist() if "study_key" in exams.columns
             else [f"row {i + 1}" for i in rows])
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (f"{what}: {len(rows)} exams in the exams table have that {exam_key} ({shown}), so it names no single "
            f"exam; give each exam its own {exam_key}")


def check_fallback(fallback: str, choices: Sequence[str] = ("none", "factors")) -> str:
    """``fallback`` itself if it is one of ``choices``.

    Raises:
        ValueError: naming the choices and what each does.
    """
    if fallback not in choices:
        what = {"none": "'none': status no_exam for a woman without a usable exam",
                "factors": "'factors': the factors-only head"}
        raise ValueError(f"fallback={fallback!r}: choose one of {tuple(choices)} ("
                         + "; ".join(what[c] for c in choices) + ")")
    return fallback


class _SafeExams:
    """Wraps an :class:`~riskmodel.imaging.ExamDataset` so that an unexpected error while reading
    one exam (beyond the DicomError/OSError the dataset already masks) gives that exam no views and
    an error message instead of stopping the whole run."""

    def __init__(self, data: Any):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self.data[index]
        except Exception as exc:  # reported on this exam's row, never silently dropped
            import torch

            from riskmodel.imaging.exams import VIEW_ORDER

            height, width = self.data.image_size
            return {"images": torch.zeros(len(VIEW_ORDER), 1, height, width),
                    "mask": torch.zeros(len(VIEW_ORDER), dtype=torch.bool),
                    "exam_id": str(self.data.exams.iloc[index]["exam_id"]),
                    "errors": f"exam: {type(exc).__name__}: {exc}"}


class ImageRiskPredictor:
    """A trained :class:`riskmodel.nn.ImageRiskModel` with its preprocessing and calibration.

    Attributes:
        model: the torch module (eval mode).
        preprocessing: dict with ``image_size``, ``view_order`` and optionally ``voi`` (one of
            :data:`riskmodel.imaging.dicom.VOI_MODES`; absent = ``"auto"``), the settings the
            model was trained with.
        calibrator: a :class:`riskmodel.calibration.YearlyCalibrator` or None.
        metadata: the bundle's user metadata (training description, metrics).
    """

    #: :class:`~riskmodel.models.base.RiskModel` protocol: the image-only model, scored by
    #: :func:`riskmodel.predict_risk` with ``exams=`` (see :meth:`prepare` and :meth:`assess`).
    name = "image"
    required_columns: tuple[str, ...] = ()
    inputs = ("exams",)
    #: Every canonical column but ``age`` (read for ``horizon="lifetime"``), ``prior_breast_cancer``
    #: and the keys: a bad value there is reported in the row's message, the row is still scored.
    notes_only_columns = tuple(c for c in COLUMNS if c not in ("age", "prior_breast_cancer", "id", "exam_id"))
    #: Cohort column holding each woman's exam key, and the exams column holding the same keys.
    key, exam_key = "exam_id", "exam_id"

    def __init__(self, model: Any, preprocessing: dict, calibrator: Any = None, metadata: dict | None = None,
                 device: str = "auto"):
        from riskmodel.device import choose_device

        self.device = choose_device(device)
        self.model = model.to(self.device).eval()
        self.preprocessing = preprocessing
        self.calibrator = calibrator
        self.metadata = metadata or {}

    @property
    def n_years(self) -> int:
        return int(self.model.config.n_years)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """``risk_1y`` … ``risk_<n_years>y``: always in :func:`riskmodel.predict_risk`'s output for this model."""
        return tuple(f"risk_{k}y" for k in range(1, self.n_years + 1))

    @property
    def max_horizon(self) -> float:
        """The longest projection in years: :attr:`n_years`."""
        return float(self.n_years)

    def __repr__(self) -> str:
        calibrated = "calibrated" if self.calibrator is not None else "uncalibrated"
        size = "x".join(str(v) for v in self.preprocessing.get("image_size", ()))
        return f"ImageRiskPredictor({self.n_years} years, {calibrated}, images {size}, device={self.device})"

    # ------------------------------------------------------------------ the RiskModel protocol

    def prepare(self, data: pd.DataFrame, *, exams: Any, fallback: str = "none", batch_size: int = 4,
                cache_dir: str | os.PathLike[str] | None = None, num_workers: int = 0,
                progress: bool = False) -> dict[str, Any]:
        """The exams and each woman's exam key, for :meth:`assess` (what :func:`riskmodel.predict_risk` calls).

        Args:
            data: the cohort, canonical column names, with the column :attr:`key` (``exam_id``).
            exams: as for :func:`read_exams` (an :class:`EncodedExams` of this predictor is not encoded again).
            fallback: must be ``"none"``: an image-only model has nothing to score a woman without an exam.
            batch_size, cache_dir, num_workers, progress: image reading, as for :meth:`encode`.

        Raises:
            ValueError: ``fallback="factors"``, no key column, or unusable exams.
        """
        if fallback == "factors":
            raise ValueError("fallback='factors': the image-only model has no factors-only fallback; a woman without "
                             "a usable exam gets status no_exam (use a hybrid model for a fallback)")
        check_fallback(fallback, ("none",))
        return {"keys": cohort_exam_keys(data, self.key, self.exam_key, "image-only"), "exams": read_exams(exams),
                "reading": {"batch_size": batch_size, "cache_dir": cache_dir, "num_workers": num_workers,
                            "progress": progress}}

    def assess(self, cohort: ValidatedCohort, years: np.ndarray, *, keys: np.ndarray, exams: Any,
               reading: dict[str, Any] | None = None) -> Mapping[str, np.ndarray]:
        """Image-only risks for validated rows, each woman through her exam; rows it cannot score are flagged.

        ``risk_<k>y`` are the exam's (calibrated) risks; ``risk`` is at the row's horizon (at most
        :attr:`n_years`), read from them at whole years and, in between, with a constant hazard
        within each year (survival interpolated geometrically, from 1 at time 0).

        ``keys`` and ``exams`` are what :meth:`prepare` returned; ``reading``: ``batch_size``,
        ``cache_dir``, ``num_workers``, ``progress`` for :meth:`encode`.

        Returns:
            ``risk``, ``risk_1y`` … , ``exam_used`` (the exams row's ``exam_id``, ``""`` if none)
            and ``n_views``, each ``(n,)``.
        """
        n = len(cohort)
        cohort.flag(cohort.column("prior_breast_cancer") == 1, "not_applicable",
                    "prior_breast_cancer=True: the image model predicts a first breast cancer")
        horizon = np.asarray(years, dtype=np.float64)
        cohort.flag(cohort.ok & np.isnan(horizon), "out_of_range",
                    "horizon: no years left to project ('lifetime' is to age 90)")
        cohort.flag(horizon > self.max_horizon + 1e-9, "out_of_range",
                    f"horizon={{h}}: the image model projects at most {self.max_horizon:g} years", h=horizon)
        found = match_exams(self, np.asarray(keys, dtype=object), cohort.ok, exams, self.exam_key, self.key,
                            **(reading or {}))
        wanted = cohort.ok
        for r in np.flatnonzero(wanted & ((found.note != "") | ~found.usable)):
            # as ValidatedCohort.flag (no exam: the reason first) and .note (views not read: appended) would
            old, note = cohort.message[r], found.note[r]
            if found.usable[r]:
                cohort.message[r] = f"{old}; {note}" if old else note
            else:
                cohort.status[r], cohort.message[r] = "no_exam", f"{note}; {old}" if old else note
        yearly = np.full((n, self.n_years), np.nan)
        extra: dict[str, np.ndarray] = {}
        if found.encoding is not None:
            yearly[found.rows], extra = self.exam_risks(cohort, found)
        scored = cohort.ok
        yearly[~scored] = np.nan
        risk = np.full(n, np.nan)
        risk[scored] = _risk_at_years(yearly[scored], horizon[scored])
        return {"risk": risk, **{f"risk_{k + 1}y": yearly[:, k] for k in range(self.n_years)},
                "exam_used": found.exam_id, "n_views": np.where(scored, found.n_views, 0), **extra}

    def exam_risks(self, cohort: ValidatedCohort, found: MatchedExams) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Yearly risks ``(m, Y)`` of the cohort rows ``found.rows`` matched to an exam, and any further output
        columns (each ``(n,)``). Here the exams' own risks and nothing more; a model that also reads the
        woman's factors (Mirai) overrides this."""
        return found.encoding.risk, {}

    def encode(self, exams: pd.DataFrame, *, batch_size: int = 4, cache_dir: str | Path | None = None,
               progress: bool = False, num_workers: int = 0) -> ExamEncoding:
        """Run the image model over exams and keep everything the fusion heads need.

        Reads and preprocesses each exam's views (:class:`~riskmodel.imaging.ExamDataset`), in
        batches of ``batch_size`` on this predictor's device (GPU when it has one; ``num_workers``
        DataLoader processes read the DICOMs). A view that cannot be read is masked and reported
        in ``message``; an exam whose reading fails in any other way (an unexpected error of a
        decoder) is reported the same way, as an exam with no view. Other exams are unaffected.

        Args:
            exams: output of :func:`riskmodel.imaging.assemble_exams` (``exam_id`` and a path
                column per view).
            batch_size, cache_dir, progress, num_workers: as for :meth:`predict`.

        Returns:
            An :class:`ExamEncoding` with one row per exam, in the order of ``exams``.
        """
        import torch
        from torch.utils.data import DataLoader

        from riskmodel.imaging import ExamDataset

        data = _SafeExams(ExamDataset(exams, image_size=tuple(self.preprocessing["image_size"]), cache_dir=cache_dir,
                                      voi=self.preprocessing.get("voi", "auto")))
        loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        if progress:
            from tqdm import tqdm

            loader = tqdm(loader, desc="scoring exams", unit="batch")
        risks, embs, dens, masks, errors = [], [], [], [], []
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda"
                    else torch.autocast("cpu", enabled=False))
        with torch.no_grad(), autocast:
            for batch in loader:
                out = self.model(batch["images"].to(self.device), batch["mask"].to(self.device))
                risks.append(out["risk"].float().cpu().numpy())
                embs.append(out["embedding"].float().cpu().numpy())
                if "density_logits" in out:
                    dens.append(torch.softmax(out["density_logits"].float(), dim=-1).cpu().numpy())
                masks.append(batch["mask"].numpy())
                errors.extend(batch["errors"])
        y, dim = self.n_years, int(self.model.config.embedding_dim)
        risk = np.concatenate(risks) if risks else np.zeros((0, y))
        mask = np.concatenate(masks) if masks else np.zeros((0, 4), dtype=bool)
        emb = np.concatenate(embs) if embs else np.zeros((0, dim), dtype=np.float32)
        n = len(mask)
        proba = np.concatenate(dens).astype(np.float64) if dens else np.full((n, 4), np.nan)
        raw = risk
        if self.calibrator is not None and n:
            risk = self.calibrator.predict(risk)
        n_views = mask.sum(axis=1)
        none = n_views == 0
        risk = np.where(none[:, None], np.nan, risk)
        raw = np.where(none[:, None], np.nan, raw)
        emb = np.where(none[:, None], np.nan, emb).astype(np.float32)
        proba = np.where(none[:, None], np.nan, proba)
        return ExamEncoding(exam_id=exams["exam_id"].to_numpy(), n_views=n_views,
                            status=np.where(none, "no_views", "ok").astype(object),
                            message=np.asarray(errors, dtype=object).reshape(n), risk=risk, raw_risk=raw, embedding=emb,
                            density_proba=proba, index=exams.index)

    def encode_exams(self, exams: pd.DataFrame, *, batch_size: int = 4, cache_dir: str | Path | None = None,
                     progress: bool = False, num_workers: int = 0) -> EncodedExams:
        """:meth:`encode` kept with its exams table (:class:`EncodedExams`), so that a hybrid model on
        this predictor can fit or score the same exams without running the network again. A table
        of the old format is converted first (:func:`riskmodel.imaging.upgrade_exams`)."""
        from riskmodel.imaging import upgrade_exams

        exams = upgrade_exams(exams)
        enc = self.encode(exams, batch_size=batch_size, cache_dir=cache_dir, progress=progress,
                          num_workers=num_workers)
        return EncodedExams(exams, enc, self)

    def risk_frame(self, enc: ExamEncoding) -> pd.DataFrame:
        """The table :meth:`predict` returns (without embeddings), from an encoding already made."""
        out = pd.DataFrame({"exam_id": enc.exam_id, "n_views": enc.n_views, "status": enc.status.astype(str),
                            "message": list(enc.message)}, index=enc.index)
        for k in range(self.n_years):
            out[f"risk_{k + 1}y"] = enc.risk[:, k]
        return out

    def predict(self, exams: pd.DataFrame, *, batch_size: int = 4, cache_dir: str | Path | None = None,
                embeddings: bool = False, progress: bool = False, num_workers: int = 0) -> pd.DataFrame:
        """Risk for each exam: one output row per input row, same index and order.

        Args:
            exams: output of :func:`riskmodel.imaging.assemble_exams` (``exam_id`` and a path
                column per view).
            batch_size: exams per forward pass.
            cache_dir: on-disk cache of preprocessed views (see :class:`~riskmodel.imaging.ExamDataset`).
            embeddings: also return the exam embedding as columns ``emb_000`` … .
            progress: show a progress bar.
            num_workers: DataLoader worker processes reading the DICOMs.

        Returns:
            ``exam_id`` (the key a cohort's ``exam_id`` holds: ``cohort.merge(out, on="exam_id")``
            joins each woman to her exam; an old-format table is converted first,
            :func:`riskmodel.imaging.upgrade_exams`), ``accession_number`` (when ``exams`` has it),
            ``n_views`` (views used),
            ``status`` (``"ok"``, or ``"no_views"`` when
            no view could be read), ``message`` (views that were missing or unreadable, and
            why), ``risk_1y`` … (calibrated when the bundle has calibrators), and the embedding
            columns if asked.
        """
        from riskmodel.imaging import upgrade_exams

        exams = upgrade_exams(exams)
        enc = self.encode(exams, batch_size=batch_size, cache_dir=cache_dir, progress=progress,
                          num_workers=num_workers)
        out = self.risk_frame(enc)
        if "accession_number" in exams.columns:  # the DICOM tag, beside the key it gave exam_id
            out.insert(1, "accession_number", exams["accession_number"].to_numpy())
        if embeddings and len(exams):
            out = pd.concat([out, pd.DataFrame(enc.embedding, index=exams.index,
                                               columns=[f"emb_{i:03d}" for i in range(enc.embedding.shape[1])])],
                            axis=1)
        return out

    def explain(self, exams: pd.DataFrame, *, years: int = 5, methods: str | Sequence[str] = ("gradcam", "ig"),
                steps: int = 16) -> list:
        """Why each exam got its ``years``-year risk: per-view saliency maps (Grad-CAM, integrated
        gradients) on each view's DICOM grid, bilateral asymmetry, and each view's contribution.

        The same as :func:`riskmodel.explain.explain` with this predictor (one
        :class:`~riskmodel.explain.ExamExplanation` per row of ``exams``, same order); write the
        overlays, maps and summary with :func:`riskmodel.explain.write_explanations`.
        """
        from riskmodel.explain.core import explain

        return explain(self, exams, years=years, methods=methods, steps=steps)

    def save(self, path: str | Path, *, metadata: dict | None = None, overwrite: bool = False) -> Path:
        """Write this predictor as a bundle (see :func:`save_image_model`)."""
        return save_image_model(path, self.model, preprocessing=self.preprocessing, calibrator=self.calibrator,
                                metadata={**self.metadata, **(metadata or {})}, overwrite=overwrite)


def _risk_at_years(yearly: np.ndarray, horizon: np.ndarray) -> np.ndarray:
    """Risk at ``horizon`` years (0 < h ≤ Y) from risks at whole years 1 … Y, shape ``(m, Y)``.

    Whole years are read as they are; in between, survival ``1 − risk`` is interpolated
    geometrically (a constant hazard within the year), from survival 1 at time 0.
    """
    m, y = yearly.shape
    k = np.clip(np.floor(horizon).astype(np.intp), 0, y)
    frac = horizon - k
    surv = np.column_stack([np.ones(m), 1.0 - yearly])
    rows = np.arange(m)
    upper = surv[rows, np.minimum(k + 1, y)]
    between = 1.0 - surv[rows, k] ** (1.0 - frac) * upper ** frac
    return np.where(frac == 0, yearly[rows, np.maximum(k - 1, 0)], between)


def save_image_model(path: str | Path, model: Any, *, preprocessing: dict, calibrator: Any = None,
                     metadata: dict | None = None, overwrite: bool = False) -> Path:
    """Save an :class:`~riskmodel.nn.ImageRiskModel` as a bundle: safetensors + JSON + SHA-256 manifest."""
    from riskmodel.bundle import save_bundle

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    prep = {"preprocessing_version": PREPROCESSING, **preprocessing}
    return save_bundle(path, state, config=model.config.to_dict(), preprocessing=prep,
                       calibration=None if calibrator is None else calibrator.to_dict(),
                       metadata=metadata or {}, overwrite=overwrite)


def _bounded_config(d: dict[str, Any], path: Path) -> Any:
    """``config.json`` as a :class:`~riskmodel.nn.ModelConfig`, each size within :data:`CONFIG_LIMITS`."""
    from riskmodel.bundle import BundleFormatError
    from riskmodel.nn import ModelConfig

    try:
        config = ModelConfig.from_dict(d)
    except (ValueError, TypeError) as exc:
        raise BundleFormatError(path, str(exc)) from None
    values = {"in_channels": [config.in_channels], "widths": list(config.widths), "blocks": list(config.blocks),
              "stages": [len(config.widths)], "embed_dim": [config.embedding_dim], "agg_layers": [config.agg_layers],
              "agg_heads": [config.agg_heads], "n_years": [config.n_years]}
    for name, vals in values.items():
        if max(vals) > CONFIG_LIMITS[name]:
            field = "len(widths)" if name == "stages" else name
            raise BundleFormatError(path, f"{field} {vals if len(vals) > 1 else vals[0]} exceeds the limit "
                                          f"{CONFIG_LIMITS[name]} of riskmodel.inference.CONFIG_LIMITS")
    return config


def _check_image_bundle(bundle: Any) -> None:
    """Everything a bundle's files must agree on, checked before any tensor is decoded or any
    model built: the config's sizes, the weights' names, dtypes and shapes (from the safetensors
    header, against the model built on the ``meta`` device), the preprocessing, and the calibration."""
    from riskmodel.bundle import WEIGHTS, BundleFormatError, check_tensor_shapes, meta_state
    from riskmodel.imaging.exams import VIEW_ORDER
    from riskmodel.nn import ImageRiskModel

    folder = bundle.path
    config = _bounded_config(bundle.config, folder / "config.json")
    expected = meta_state(lambda: ImageRiskModel(config))
    try:
        check_tensor_shapes({k: tuple(v.shape) for k, v in expected.items()},
                            {k: shape for k, (_, shape) in bundle.tensors.items()},
                            "the weights do not fit config.json")
    except ValueError as exc:
        raise BundleFormatError(folder / WEIGHTS, str(exc)) from None
    for name, (dtype, _) in bundle.tensors.items():  # a float weight may be stored in another float precision
        if expected[name].is_floating_point() != (dtype in ("F16", "BF16", "F32", "F64")):
            raise BundleFormatError(folder / WEIGHTS, f"tensor {name!r} is {dtype}; the model holds "
                                                      f"{expected[name].dtype}")
    prep, ppath = bundle.preprocessing, folder / "preprocessing.json"
    if prep.get("preprocessing_version") != PREPROCESSING:
        raise BundleFormatError(ppath, f"preprocessing_version {prep.get('preprocessing_version')!r} is not "
                                       f"supported by this version of riskmodel (expects {PREPROCESSING!r})")
    try:  # the same rules as for a new model's preprocessing
        image_preprocessing(prep.get("image_size", ()), prep.get("voi", "auto"))
    except (ValueError, TypeError) as exc:
        raise BundleFormatError(ppath, str(exc)) from None
    if list(prep["image_size"]) != list(config.image_size):
        raise BundleFormatError(ppath, f"image_size {prep['image_size']} differs from config.json's image_size "
                                       f"{list(config.image_size)} (the size the model was trained at)")
    if "view_order" in prep and prep["view_order"] != list(VIEW_ORDER):
        raise BundleFormatError(ppath, f"view_order {prep['view_order']!r} is not {list(VIEW_ORDER)}, the order in "
                                       "which riskmodel always gives the views to the model")
    if bundle.calibration is not None and bundle.calibration["n_years"] != config.n_years:
        raise BundleFormatError(folder / "calibration.json", f"n_years {bundle.calibration['n_years']} differs from "
                                                             f"config.json's n_years {config.n_years}")


def load_image_model(path: str | Path, device: str = "auto") -> ImageRiskPredictor:
    """Load a bundle written by :func:`save_image_model`, verifying every file's SHA-256 first.

    Before any tensor is decoded or the model built, the bundle's files must agree
    (:func:`_check_image_bundle`): config sizes within :data:`CONFIG_LIMITS`; the weights'
    names, shapes and kinds of dtype those of the model ``config.json`` describes; a supported
    preprocessing version; ``image_size`` within [:data:`MIN_IMAGE_SIDE`, :data:`MAX_IMAGE_SIDE`] and equal
    to the config's; ``view_order`` (when present) the order riskmodel feeds views in; and the
    calibration's ``n_years`` the model's. Every weight must be finite (:func:`riskmodel.bundle.load_bundle`).

    Raises:
        riskmodel.bundle.BundleError: the bundle is incomplete, altered or of another format;
            or its files do not agree (the message names the file and the field).
    """
    from riskmodel.bundle import WEIGHTS, BundleFormatError, load_bundle
    from riskmodel.calibration import YearlyCalibrator
    from riskmodel.nn import ImageRiskModel, ModelConfig

    bundle = load_bundle(path, check=_check_image_bundle)
    try:
        model = ImageRiskModel(ModelConfig.from_dict(bundle.config))
        model.load_state_dict(bundle.state_dict, strict=True)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise BundleFormatError(Path(path) / WEIGHTS, f"weights and config.json do not describe the same model: "
                                                      f"{exc}") from exc
    calibrator = YearlyCalibrator.from_dict(bundle.calibration) if bundle.calibration else None
    return ImageRiskPredictor(model, bundle.preprocessing, calibrator, bundle.metadata.get("user", {}), device=device)
