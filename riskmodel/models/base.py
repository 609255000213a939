"""The :class:`RiskModel` protocol: what every model scored by :func:`riskmodel.predict_risk` declares and does.

A model is any object with these attributes and methods; no base class is needed (a
:class:`typing.Protocol`, checked at run time with ``isinstance(obj, RiskModel)``). The shared
scoring core (:func:`riskmodel.models.core.score_cohort`) parses the horizon, validates the
cohort against ``required_columns``, runs the chunk loop and builds the output frame; the model
only says which rows it cannot score (flags on the cohort) and computes the risks of the others.
See ``docs/models.md`` for a worked example.

This module imports neither torch nor any other riskmodel module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from riskmodel.schema import ValidatedCohort

__all__ = ["MEMBERS", "LazyColumns", "RiskModel", "check_risk_model", "missing_members"]


@runtime_checkable
class RiskModel(Protocol):
    """A breast-cancer risk model that :func:`riskmodel.predict_risk` can score.

    Attributes:
        name: short name, written in the output's ``model`` column (``"gail"``, ``"hybrid"``, …).
        required_columns: canonical columns (:data:`riskmodel.schema.COLUMNS`) that must be in the
            cohort; a missing one is a :class:`~riskmodel.SchemaError` before anything is scored.
        output_columns: columns the output always has besides ``risk``, ``status``, ``message``,
            ``model`` and ``horizon`` (e.g. ``risk_1y`` … ``risk_5y``); other keys that
            :meth:`assess` returns are added only with ``details=True``.
        max_horizon: the longest projection in years (None: no limit). Rows asking for more must be
            flagged ``out_of_range`` by :meth:`assess`; the core flags any it leaves ``ok``.
        inputs: what the model needs besides the cohort table, e.g. ``("exams",)``: each is a
            keyword argument of ``predict_risk`` passed on to :meth:`prepare`.

    A model may also have ``notes_only_columns``: canonical columns it does not read, whose bad
    values are reported in the row's message without changing its status.
    """

    name: str
    required_columns: tuple[str, ...]
    output_columns: tuple[str, ...]
    max_horizon: float | None
    inputs: tuple[str, ...]

    def prepare(self, data: pd.DataFrame, **inputs: Any) -> dict[str, Any]:
        """Turn the cohort (canonical column names) and the extra ``inputs`` into what :meth:`assess` needs.

        Called once per scoring call, before validation. Returns keyword arguments for
        :meth:`assess` (``{}`` for a model that needs nothing). A value that is a numpy array
        must have one entry per cohort row (shape ``(n, ...)``): the core slices it chunk by chunk
        with the cohort; anything else is passed whole to every chunk.

        Raises:
            ValueError: an input is missing or unusable as a whole (naming it).
        """
        ...

    def assess(self, cohort: ValidatedCohort, years: np.ndarray, **prepared: Any) -> Mapping[str, np.ndarray]:
        """Risks for one chunk of a validated cohort, flagging on ``cohort`` the rows it cannot score.

        Args:
            cohort: the chunk (:class:`~riskmodel.schema.ValidatedCohort`); rows whose status is
                not ``"ok"`` are skipped and keep their status.
            years: projection length in years per row, shape ``(n,)``, NaN where unusable.
            prepared: what :meth:`prepare` returned (per-row arrays sliced to this chunk).

        Returns:
            ``{"risk": (n,) absolute risk in [0, 1], NaN where not scored, ...}``: every
            ``output_columns`` entry and any detail columns, each of shape ``(n,)``. A detail
            column that costs time can be deferred with :class:`LazyColumns`: it is computed only
            when the caller asked for details.
        """
        ...


class LazyColumns(Mapping[str, np.ndarray]):
    """What :meth:`RiskModel.assess` returns, with some columns computed only when first read.

    The scoring core reads detail columns only with ``details=True``, so a costly one (Gail's
    ``average_risk``, a second integral over every row) costs nothing otherwise.

    Args:
        ready: columns already computed, each shape ``(n,)``.
        deferred: column name -> function of no arguments returning it, shape ``(n,)``; called at most once.

    Examples:
        >>> calls = []
        >>> cols = LazyColumns({"risk": np.zeros(2)}, extra=lambda: calls.append(1) or np.ones(2))
        >>> sorted(cols), calls
        (['extra', 'risk'], [])
        >>> cols["extra"].tolist(), cols["extra"].tolist(), calls
        ([1.0, 1.0], [1.0, 1.0], [1])
    """

    def __init__(self, ready: Mapping[str, np.ndarray], **deferred: Callable[[], np.ndarray]):
        self._values = dict(ready)
        self._deferred = {k: f for k, f in deferred.items() if k not in self._values}
        self._order = [*self._values, *self._deferred]

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._values:
            make = self._deferred.pop(key)  # KeyError for a column neither ready nor deferred
            self._values[key] = make()
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __repr__(self) -> str:
        return f"LazyColumns(ready={list(self._values)}, deferred={list(self._deferred)})"


#: The attributes and methods a :class:`RiskModel` has, in the order they are reported when missing.
MEMBERS: tuple[str, ...] = ("name", "required_columns", "output_columns", "max_horizon", "inputs", "prepare",
                            "assess")


def missing_members(obj: object) -> list[str]:
    """The :data:`MEMBERS` that ``obj`` lacks (``prepare``/``assess`` also when not callable).

    >>> class Half:
    ...     name = "half"
    ...     required_columns = ("age",)
    >>> missing_members(Half())
    ['output_columns', 'max_horizon', 'inputs', 'prepare', 'assess']
    """
    missing = [m for m in MEMBERS if not hasattr(obj, m)]
    return missing + [m for m in ("prepare", "assess") if m not in missing and not callable(getattr(obj, m))]


def check_risk_model(obj: object) -> RiskModel:
    """``obj`` itself if it satisfies :class:`RiskModel`.

    Raises:
        TypeError: naming every attribute or method it lacks.
    """
    missing = missing_members(obj)
    if missing:
        raise TypeError(f"model: a {type(obj).__name__} object is not a riskmodel.RiskModel: it lacks "
                        f"{', '.join(missing)} (see docs/models.md for the protocol)")
    return obj  # type: ignore[return-value]
