"""Which model a name, a folder or an object stands for: :func:`resolve`, :func:`register`, :data:`MODELS`.

* A **name** in :data:`MODELS` (``"gail"``) is built by its registered factory.
* A **folder** is recognised by the ``format`` of its ``manifest.json`` (:data:`FOLDER_KINDS`):
  an image bundle (``riskmodel-bundle``, :func:`riskmodel.load_image_model`, or an imported Mirai model,
  :func:`riskmodel.mirai.load_mirai_bundle`) or a saved hybrid
  model (``riskmodel-hybrid``, :func:`riskmodel.load_hybrid`). A new kind of saved model (a
  Mirai port, say) adds one entry with :func:`register_folder`.
* An **object** satisfying :class:`~riskmodel.models.base.RiskModel` is used as it is. An object
  written for the earlier contract (``required_columns`` and ``score(cohort, horizon)``) is
  wrapped so that it keeps working.

Heavy packages (torch, scikit-learn, lifelines) are imported only when a folder is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.gail import GailModel
from riskmodel.inference import read_exams
from riskmodel.jsonstate import MANIFEST, MAX_MANIFEST_BYTES, BundleFormatError, read_json_file
from riskmodel.models.base import RiskModel, check_risk_model, missing_members
from riskmodel.models.core import Horizon, prepare_and_score
from riskmodel.schema import ColumnMatch, match_columns

__all__ = ["FOLDER_KINDS", "HYBRID_NEEDS_BUNDLE", "MODELS", "FolderKind", "ScoreAdapter", "load_folder", "register",
           "register_folder", "resolve", "score_frame"]

#: Why ``model="hybrid"`` alone cannot be scored.
HYBRID_NEEDS_BUNDLE = (
    "model='hybrid' needs a trained hybrid model: pass the path of a folder written by HybridModel.save (or "
    "'riskmodel fit-hybrid'), or a fitted riskmodel.fusion.HybridModel. riskmodel ships no pretrained weights; "
    "see docs/fusion.md to train one on your own exams"
)

#: Model names :func:`resolve` accepts, with what each is (``riskmodel.MODELS``).
MODELS: dict[str, str] = {}
_FACTORIES: dict[str, Callable[[], RiskModel]] = {}


def register(name: str, factory: Callable[[], RiskModel], description: str) -> None:
    """Make ``name`` a model of :func:`resolve` (and so of ``predict_risk(model=name)``).

    Args:
        name: the model's name; replaces an earlier registration of the same name.
        factory: called without arguments each time the name is resolved; returns a
            :class:`~riskmodel.models.base.RiskModel` (or raises ValueError saying why it cannot).
        description: one line for :data:`MODELS` (shown by ``riskmodel predict --help``).

    Raises:
        TypeError: ``factory`` is not callable or ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"register: name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"register: factory for {name!r} must be callable, got {type(factory).__name__}")
    MODELS[name] = str(description)
    _FACTORIES[name] = factory


@dataclass(frozen=True)
class FolderKind:
    """A kind of saved model folder.

    Attributes:
        load: ``load(path, device=...)`` returns the :class:`~riskmodel.models.base.RiskModel`
            saved there, after checking the folder.
        description: what the folder is, for messages.
    """

    load: Callable[..., RiskModel]
    description: str


#: ``manifest.json`` ``format`` → the kind of saved model it marks.
FOLDER_KINDS: dict[str, FolderKind] = {}


def register_folder(format: str, load: Callable[..., RiskModel], description: str) -> None:
    """Make folders whose ``manifest.json`` says ``"format": format`` loadable by :func:`resolve`.

    Args:
        format: the manifest's format tag (e.g. ``"riskmodel-hybrid"``).
        load: ``load(path, device=...)`` returns the model; it checks the folder itself.
        description: what such a folder is (for messages).
    """
    if not callable(load):
        raise TypeError(f"register_folder: load for {format!r} must be callable, got {type(load).__name__}")
    FOLDER_KINDS[format] = FolderKind(load, str(description))


def _hybrid_needs_a_folder() -> RiskModel:
    raise ValueError(HYBRID_NEEDS_BUNDLE)


def _load_hybrid(path: Path, device: str = "auto") -> RiskModel:
    from riskmodel.fusion.hybrid import load_hybrid  # defers scikit-learn, lifelines and xgboost

    return load_hybrid(path, device=device)


register("gail", GailModel, "Gail model / NCI BCRAT (R BCRA 2.1.2), ages 20–90, invasive breast cancer")
register("hybrid", _hybrid_needs_a_folder, "mammography embedding + risk factors (riskmodel.fusion.HybridModel), "
                                           "1–5 years; needs a trained model folder (HybridModel.save / riskmodel "
                                           "fit-hybrid) and exams")
def _load_image_bundle(path: Path, device: str = "auto") -> RiskModel:
    from riskmodel.mirai.adapter import load_image_bundle  # defers torch; a Mirai bundle shares the format

    return load_image_bundle(path, device=device)


register_folder("riskmodel-bundle", _load_image_bundle,
                "an image-only model bundle (riskmodel.inference.save_image_model) or an imported Mirai model "
                "(riskmodel import-mirai)")
register_folder("riskmodel-hybrid", _load_hybrid, "a saved hybrid model (HybridModel.save)")


def load_folder(path: str | os.PathLike[str], device: str = "auto") -> RiskModel:
    """The model saved in folder ``path``, of whichever kind its ``manifest.json`` names.

    Only the manifest (at most 1 MiB, no symbolic link, strict JSON) is read here; the kind's
    loader then checks everything else before building anything.

    Raises:
        riskmodel.bundle.BundleFormatError: not a folder, no readable manifest, or a ``format`` that is not
            one of :data:`FOLDER_KINDS` (the message lists them).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise BundleFormatError(folder, "does not exist" if not folder.exists() else
                                "is not a folder; a saved model (image bundle, hybrid model) is a folder")
    kinds = "; ".join(f"{fmt!r}: {kind.description}" for fmt, kind in FOLDER_KINDS.items())
    manifest = read_json_file(folder / MANIFEST, MAX_MANIFEST_BYTES,
                              f"a saved model folder has a manifest.json naming its format ({kinds})")
    fmt = manifest.get("format")
    kind = FOLDER_KINDS.get(fmt) if isinstance(fmt, str) else None
    if kind is None:
        raise BundleFormatError(folder / MANIFEST, f"'format' {fmt!r} is not a kind of saved model riskmodel "
                                                   f"scores; known: {kinds}")
    return check_risk_model(kind.load(folder, device=device))


class ScoreAdapter:
    """A model written for the earlier contract (``required_columns`` and ``score(cohort, horizon)``
    returning an object with array attributes, ``needs_exams`` and ``exam_keys`` for models that
    read exams), seen through the :class:`~riskmodel.models.base.RiskModel` protocol."""

    max_horizon = None

    def __init__(self, model: Any):
        self.model = model
        self.name = str(getattr(model, "name", type(model).__name__))
        self.required_columns = tuple(model.required_columns)
        self.output_columns = tuple(getattr(model, "output_columns", ()))
        self.notes_only_columns = tuple(getattr(model, "notes_only_columns", ()))
        self.inputs = ("exams",) if getattr(model, "needs_exams", False) else ()

    def prepare(self, data: pd.DataFrame, **inputs: Any) -> dict[str, Any]:
        """``{}``, or for a model that reads exams its ``keys`` (``exam_keys(data)``) and the exams table."""
        if not self.inputs:
            return {}
            options = {k: v for k, v in inputs.items() if k != "exams"}
        return {"exams": read_exams(inputs["exams"]), "keys": np.asarray(self.model.exam_keys(data)),
                "options": options}

    def assess(self, cohort: Any, years: np.ndarray, **prepared: Any) -> Mapping[str, np.ndarray]:
        """``score``'s result as a mapping."""
        options = prepared.pop("options", {})
        result = self.model.score(cohort, years, **prepared, **options)
        return result if isinstance(result, Mapping) else dict(vars(result))


def resolve(model: str | os.PathLike[str] | Any, *, device: str = "auto") -> RiskModel:
    """The :class:`~riskmodel.models.base.RiskModel` that ``model`` stands for.

    Args:
        model: a name in :data:`MODELS`; the folder of a saved model (any of :data:`FOLDER_KINDS`);
            or a model object.
        device: where a model loaded from a folder runs (``"auto"``: the GPU if any).

    Raises:
        ValueError: an unknown name (or no such folder), or ``"hybrid"`` (a trained one is needed).
        TypeError: an object that is not a RiskModel (the message names what it lacks).
        riskmodel.bundle.BundleError: a folder that is not a saved model or fails its checks.

    >>> resolve("gail").name
    'gail'
    """
    if isinstance(model, os.PathLike) or (isinstance(model, str) and model not in MODELS and Path(model).is_dir()):
        return load_folder(model, device=device)
    if isinstance(model, str):
        if model in _FACTORIES:
            return check_risk_model(_FACTORIES[model]())
        raise ValueError(f"unknown model {model!r}; available: {', '.join(MODELS)} (or the folder of a saved "
                         "model: an image bundle or a hybrid model), and no such folder")
    missing = missing_members(model)
    if missing and hasattr(model, "score") and hasattr(model, "required_columns") and "assess" in missing:
        return ScoreAdapter(model)
    return check_risk_model(model)


def score_frame(data: pd.DataFrame, model: str | os.PathLike[str] | Any = "gail", horizon: Horizon = 5.0, *,
                exams: Any = None, fallback: str = "none", details: bool = False, chunk_size: int = 250_000,
                progress: bool = False, batch_size: int = 4, cache_dir: str | os.PathLike[str] | None = None,
                num_workers: int = 0, device: str = "auto", columns: Mapping[Any, str] | ColumnMatch | None = None,
                na_values: Iterable[str] | None = None) -> pd.DataFrame:
    """:func:`riskmodel.predict_risk` for a pandas DataFrame: resolve ``model``, pass ``exams`` (and the
    image-reading options) to a model that reads them, then :func:`~riskmodel.models.core.prepare_and_score`.

    The one implementation behind ``predict_risk`` and the file and Dask front doors
    (:mod:`riskmodel.distributed`), which sit beside ``riskmodel.api`` and so do not import it. The
    arguments are ``predict_risk``'s.

    Raises:
        TypeError: ``data`` is not a pandas DataFrame.
        ValueError: a model that reads mammograms without ``exams``, or ``exams`` for one that does not.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    match = columns if isinstance(columns, ColumnMatch) else match_columns(data, columns)
    impl = resolve(model, device=device)
    inputs: dict[str, Any] = {}
    if "exams" in impl.inputs:
        if exams is None:
            raise ValueError(f"model {impl.name!r} reads mammograms: pass exams= (a DataFrame from "
                             "riskmodel.imaging.assemble_exams, a folder of DICOM files, or an exams table)")
        inputs = {"exams": exams, "fallback": fallback, "batch_size": batch_size, "cache_dir": cache_dir,
                  "num_workers": num_workers, "progress": progress}
    elif exams is not None:
        raise ValueError(f"exams= is for models that read mammograms (an image or hybrid model); model "
                         f"{impl.name!r} does not use them")
    return prepare_and_score(impl, data, horizon, inputs=inputs, details=details, chunk_size=chunk_size,
                             progress=progress, columns=match, na_values=na_values)
