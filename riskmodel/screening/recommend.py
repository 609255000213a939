"""``riskmodel.recommend_screening``: turn each woman's risk into a screening recommendation.

This is the last stage of the data flow: cohort → schema → model → risks → **policy** →
recommendations. A policy (:mod:`riskmodel.screening.policy`) is applied row by row:

1. the row must have a valid risk (``status == "ok"``); otherwise it gets status ``no_risk`` and no
   recommendation (one exception: a carrier, under a policy whose carrier rule leads to its most
   intensive category, is placed by that rule alone — the risk would not change it);
2. her age must be in the policy's ages (else ``out_of_range``) and none of its ``not_for``
   conditions may hold (else ``not_applicable``);
3. the policy's risk measure is found (:mod:`riskmodel.screening.measures`; else ``no_risk``);
4. the thresholds give her category; upgrade rules may raise it (a pathogenic variant; being in
   the top percentile of risk for her age, which needs a reference population, else
   ``no_reference``); the schedule for her category and age gives modality and interval;
5. the chemoprevention flag comes from the category and from the policy's chemoprevention policy.

The output supports a clinician's decision; it does not replace it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.schema import SchemaError, match_columns, validate
from riskmodel.screening.measures import MEASURE_WORDS, Measured, not_real, real_numbers, resolve_measure
from riskmodel.screening.policy import CONDITIONS, Policy, Threshold, load_policy

__all__ = ["RECOMMENDATION_COLUMNS", "RECOMMENDATION_STATUS", "add_recommendations", "applied_policy", "clinic_table",
           "recommend_screening"]

#: Columns of :func:`recommend_screening`'s output, in order.
RECOMMENDATION_COLUMNS = ("category", "interval_months", "modality", "supplemental", "chemoprevention_discussion",
                          "rationale", "policy", "policy_version", "status", "message", "risk_measure", "risk_used")
#: Statuses of a recommendation row.
RECOMMENDATION_STATUS = {
    "ok": "a recommendation was made",
    "no_risk": "no valid risk for this row (the model's status and message say why), or not the measure the "
               "policy needs",
    "invalid": "a value this policy reads (age, brca, a condition, the risk) is not usable",
    "inconsistent": "the cohort given does not reproduce the scored risk",
    "out_of_range": "her age is outside the ages the policy covers",
    "not_applicable": "the policy is not for her (e.g. a carrier under an average-risk policy)",
    "no_reference": "an age-percentile rule could not be evaluated: too few women of her age in the reference",
}
_COLUMNS_READ = ("age", *(c for c, _ in CONDITIONS.values()))
#: ``DataFrame.attrs`` key under which the applied policy travels with a recommendation table: a
#: JSON-ready dict (``id``, ``version``, ``title``, ``citation``, ``file``; Parquet keeps it) from
#: :func:`policy_citation`.
POLICY_ATTR = "riskmodel.policy"
_RISK_COLUMNS = ("risk", "risk_1y", "risk_2y", "risk_3y", "risk_4y", "risk_5y", "risk_10y", "risk_lifetime")


@dataclass
class _Rows:
    """Per-row arrays built while classifying; shape ``(n,)`` each."""

    status: np.ndarray
    message: np.ndarray
    category: np.ndarray  # index into policy.categories, -1 = none
    rule: np.ndarray  # object: words for the rationale


def _inputs(data: pd.DataFrame, cohort: pd.DataFrame | None) -> pd.DataFrame:
    """Age and the condition columns, from ``data`` or else from ``cohort`` (same index)."""
    if cohort is not None:
        if not isinstance(cohort, pd.DataFrame):
            raise TypeError(f"cohort must be a pandas DataFrame, got {type(cohort).__name__}")
        if len(cohort) != len(data) or not cohort.index.equals(data.index):
            raise ValueError(f"cohort: its index differs from data's ({len(cohort)} vs {len(data)} rows); pass the "
                             "table that was scored, with the same index and order")
        # The cohort's columns as predict_risk reads them (``Age``, ``BRCA``): a condition column is never
        # skipped because of how its header is spelt.
        cohort = match_columns(cohort).apply(cohort)
    cols = {}
    for name in _COLUMNS_READ:
        if name in data.columns:
            cols[name] = data[name].to_numpy()
        elif cohort is not None and name in cohort.columns:
            cols[name] = cohort[name].to_numpy()
    if "age" not in cols:
        raise SchemaError("age", "needed to apply a screening policy; it is neither in data nor in cohort= (pass "
                          "the cohort that was scored, or score with --keep-input)")
    return pd.DataFrame(cols, index=data.index)


def _gail_input(data: pd.DataFrame, cohort: pd.DataFrame | None) -> pd.DataFrame | None:
    """The table the Gail model can be rerun on: the cohort, or ``data`` if it carries the inputs."""
    if cohort is not None:
        return cohort
    return data if "age" in data.columns else None


def recommend_screening(
    data: pd.DataFrame,
    policy: str | os.PathLike[str] | Policy = "uspstf2024",
    *,
    cohort: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A screening recommendation for each woman, from her risk and a policy.

    Args:
        data: the output of :func:`riskmodel.predict_risk` (``risk``, ``status``, ``message``,
            ``model``, ``horizon``; optionally ``risk_1y`` … ``risk_5y``), or any table of risks with
            ``risk`` + ``horizon`` (years) or the columns ``risk_5y`` / ``risk_10y`` /
            ``risk_lifetime`` (probabilities). It may also hold the cohort's columns
            (``predict --keep-input``).
        policy: a shipped policy (``"uspstf2024"``, ``"wisdom"``, ``"mypebs"``, ``"acr2023"``,
            ``"chemoprevention"``; see :func:`riskmodel.screening.list_policies`), the path of a
            custom policy file, or a loaded :class:`~riskmodel.screening.Policy`.
        cohort: the table that was scored (same index), for ``age`` and the columns the policy
            reads (``brca``, ``chest_radiation``, ``prior_breast_cancer``, …) when ``data`` lacks
            them, and to recompute a Gail risk at another horizon (e.g. lifetime to age 90).
        reference: for a "top percentile for age" rule: a table with ``age`` (years) and the
            policy's risk measure (``risk_5y``, or ``risk`` with ``horizon``), scored by the same
            model. Default: the rows of ``data`` that have that measure.

    Returns:
        DataFrame with the index of ``data`` and the columns :data:`RECOMMENDATION_COLUMNS`:
        ``category`` (the policy's category id), ``interval_months`` (months between screens;
        NaN where the policy says not to screen yet or leaves it to an individual decision),
        ``modality`` (a key of :data:`~riskmodel.screening.policy.MODALITIES`), ``supplemental``
        (``"mri"``, ``"ultrasound"`` or ``""``), ``chemoprevention_discussion`` (nullable boolean:
        NA where it cannot be told), ``rationale`` (the threshold, the age window and the source),
        ``policy``, ``policy_version``, ``status`` (:data:`RECOMMENDATION_STATUS`), ``message``
        (why a row has no recommendation, or a caveat), ``risk_measure`` and ``risk_used`` (the
        probability compared with the thresholds). Rows without a recommendation have empty
        ``category``, ``modality`` and ``rationale``.

    Raises:
        riskmodel.SchemaError: ``age`` is nowhere to be found, or ``data`` has no risk column.
        riskmodel.screening.PolicyError: an unknown policy or a malformed policy file.
        ValueError: ``cohort`` does not have ``data``'s index.

    Examples:
        >>> import pandas as pd, riskmodel
        >>> risks = pd.DataFrame({"risk": [0.011, 0.025, 0.07], "status": "ok", "model": "gail",
        ...                       "horizon": 5.0, "age": [45.0, 45.0, 60.0]})
        >>> out = riskmodel.recommend_screening(risks, "mypebs")
        >>> out["category"].tolist(), out["interval_months"].tolist(), out["supplemental"].tolist()
        (['average', 'high', 'very_high'], [24.0, 12.0, 12.0], ['', '', 'mri'])
    """
    pol = load_policy(policy)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not {"risk", "risk_5y", "risk_10y", "risk_lifetime"} & set(data.columns):
        raise SchemaError("risk", "data has no risk column (risk, risk_5y, risk_10y or risk_lifetime); pass the "
                          "output of riskmodel.predict_risk")
    frame = _inputs(data, cohort)
    checked = validate(frame, required=("age",))
    n = len(data)
    age = checked.column("age")
    rows = _Rows(np.full(n, "ok", dtype=object), np.full(n, "", dtype=object), np.full(n, -1, dtype=np.intp),
                 np.full(n, "", dtype=object))

    given_status = (data["status"].astype(str).to_numpy(dtype=object) if "status" in data.columns
                    else np.full(n, "ok", dtype=object))
    given_message = (data["message"].fillna("").astype(str).to_numpy(dtype=object) if "message" in data.columns
                     else np.full(n, "", dtype=object))
    valid = given_status == "ok"
    known = checked.ok & ~np.isnan(age)  # age and the columns the policy reads are usable

    # 1. the policy's ages and exclusions: they need no risk, and say more than "no risk" would.
    _flag(rows, known & ~pol.ages.contains(age), "out_of_range",
          lambda i: f"age={age[i]:g}: {pol.title} covers ages {pol.ages} (years)")
    for cond in pol.not_for:
        _flag(rows, known & _condition(checked, cond), "not_applicable", lambda i, cond=cond: f"{pol.title} is not "
              f"for women with {CONDITIONS[cond][1]} ({CONDITIONS[cond][0]})")

    # 2. the scored risk must be valid, and so must what the policy reads.
    _flag(rows, ~valid, "no_risk", lambda i: f"no valid risk (status {given_status[i]}"
          + (f": {given_message[i]})" if given_message[i] else ")"))
    _flag(rows, ~checked.ok, "invalid", lambda i: str(checked.message[i]))
    risks_ok = _check_risk_values(data, rows, valid & checked.ok)
    given = [real_numbers(data[c]) for c in ("risk", "risk_5y", "risk_10y", "risk_lifetime") if c in data.columns]
    no_value = ~np.any([~np.isnan(v) for v in given], axis=0)
    _flag(rows, valid & no_value, "no_risk", lambda i: "no risk value in this row (NaN) although its status is ok")

    # Carriers placed by a rule that leads to the policy's top category need no risk.
    carrier = _condition(checked, "carrier")
    top = [u for u in pol.upgrades if u.when == "carrier" and pol.category(u.category).rank == len(pol.categories) - 1]
    by_carrier = (carrier & known & ~valid & (rows.status == "no_risk")) if top else np.zeros(n, bool)
    rows.status[by_carrier] = "ok"
    rows.message[by_carrier] = [f"no risk from the model (status {given_status[i]}); the category follows from "
                                "carrier status alone" for i in np.flatnonzero(by_carrier)]
    live = rows.status == "ok"

    # 3. the risk measure.
    measured = _measure(pol, data, age, live & risks_ok & ~by_carrier, cohort)
    missing_measure = live & ~by_carrier & (measured.status != "ok")
    for code in ("no_risk", "inconsistent"):
        _flag(rows, missing_measure & (measured.status == code), code, lambda i: str(measured.problem[i]))
    live &= ~missing_measure

    # 4. category: thresholds, then upgrades.
    _thresholds(pol, rows, live & ~by_carrier, age, measured.value)
    _upgrades(pol, rows, live, age, measured, checked, carrier, data, reference)
    live &= rows.status == "ok"

    # Caveats on rows that were placed.
    if pol.uses("carrier"):
        unknown = live & np.isnan(checked.column("brca"))
        _note(rows, unknown, "brca unknown: the policy's carrier rule was not applied")
    if not pol.verified:
        n_bad = sum(not v.verified for v in pol.verification)
        total = len(pol.verification)
        caveat = ("this policy file lists no verification of its figures" if total == 0 else
                  f"not verified against the primary source: {n_bad} of {total} claims in this policy file (see its "
                  "[[verification]] entries)")
        _note(rows, live, caveat)
    return _assemble(pol, data.index, rows, live, age, measured, data, cohort)


# ---------------------------------------------------------------------------- steps


def _flag(rows: _Rows, mask: np.ndarray, code: str, message) -> None:
    """Give ``code`` and a message to rows in ``mask`` that are still ok."""
    for i in np.flatnonzero(mask & (rows.status == "ok")):
        rows.status[i], rows.message[i] = code, message(i)


def _note(rows: _Rows, mask: np.ndarray, text: str) -> None:
    for i in np.flatnonzero(mask):
        rows.message[i] = f"{rows.message[i]}; {text}" if rows.message[i] else text


def _check_risk_values(data: pd.DataFrame, rows: _Rows, usable: np.ndarray) -> np.ndarray:
    """Risk columns must hold probabilities in [0, 1] and ``horizon`` real numbers; others flag the row ``invalid``.

    A boolean or complex value is never read as a number (``True`` is not a risk of 100%).
    """
    ok = np.ones(len(data), dtype=bool)
    for name in ("risk", "risk_5y", "risk_10y", "risk_lifetime", "horizon"):
        if name not in data.columns:
            continue
        odd = not_real(data[name])
        what = "a number of years" if name == "horizon" else "a probability in [0, 1]"
        _flag(rows, usable & odd, "invalid", lambda i, name=name, what=what: f"{name}={data[name].iat[i]}: a "
              f"{'complex number' if np.iscomplexobj(data[name].iat[i]) else 'boolean'} is not {what}")
        ok &= ~(usable & odd)
        if name == "horizon":
            continue
        v = real_numbers(data[name])
        bad = usable & ~np.isnan(v) & ((v < 0) | (v > 1))
        _flag(rows, bad, "invalid", lambda i, name=name, v=v: f"{name}={v[i]:g}: must be a probability in [0, 1]"
              + (" (a percentage? divide by 100)" if 1 < v[i] <= 100 else ""))
        ok &= ~bad
    return ok


def _condition(checked, condition: str) -> np.ndarray:
    column = CONDITIONS[condition][0]
    v = checked.column(column)
    return (v == 1) | (v == 2) if condition == "carrier" else v == 1


def _measure(pol: Policy, data: pd.DataFrame, age: np.ndarray, usable: np.ndarray,
             cohort: pd.DataFrame | None) -> Measured:
    n = len(data)
    if pol.measure == "none":
        empty = np.full(n, "", dtype=object)
        return Measured(np.full(n, np.nan), empty, empty.copy(), np.full(n, "ok", dtype=object))
    return resolve_measure(data, pol.measure, age, usable, _gail_input(data, cohort))


def _pct(p: float, near: float | None = None) -> str:
    """A probability as a percentage, with enough digits not to look equal to ``near`` when it is not."""
    for digits in range(2, 8):
        text = f"{p * 100:.{digits}f}%"
        if near is None or p == near or text != f"{near * 100:.{digits}f}%":
            return text
    return f"{p * 100:.10g}%"


def _threshold_words(pol: Policy, t: Threshold, age: float, risk: float) -> str:
    if pol.measure == "none":
        return f"age {age:g} is in {t.ages}"
    near = t.risk.lo if abs(risk - t.risk.lo) <= abs(risk - t.risk.hi) else t.risk.hi
    where = f" at ages {t.ages}" if t.ages != pol.ages else ""
    return f"{MEASURE_WORDS[pol.measure]} risk {_pct(risk, near)} is in {t.risk}{where}"


def _thresholds(pol: Policy, rows: _Rows, mask: np.ndarray, age: np.ndarray, risk: np.ndarray) -> None:
    value = np.zeros(len(age)) if pol.measure == "none" else risk
    for t in pol.thresholds:
        hit = mask & t.ages.contains(age) & t.risk.contains(value) & (rows.category < 0)
        idx = np.flatnonzero(hit)
        rows.category[idx] = pol.category(t.category).rank
        for i in idx:
            rows.rule[i] = _threshold_words(pol, t, age[i], value[i])
    # The policy schema guarantees a category for every (age, risk) in range; a NaN risk cannot get here.
    if (mask & (rows.category < 0)).any():
        raise RuntimeError(f"policy {pol.id}: thresholds did not place every row (a bug in the policy checks)")


def _upgrades(pol: Policy, rows: _Rows, live: np.ndarray, age: np.ndarray, measured: Measured, checked,
              carrier: np.ndarray, data: pd.DataFrame, reference: pd.DataFrame | None) -> None:
    brca = checked.column("brca")
    for u in pol.upgrades:
        target = pol.category(u.category).rank
        if u.when == "top_percentile_for_age":
            _percentile(pol, u, rows, live, age, measured, data, reference)
            continue
        hit = live & _condition(checked, u.when) & (rows.category < target)
        for i in np.flatnonzero(hit):
            rows.category[i] = target
            what = ("a BRCA1 pathogenic variant" if brca[i] == 1 else "a BRCA2 pathogenic variant") \
                if u.when == "carrier" else CONDITIONS[u.when][1]
            rows.rule[i] = f"{what} (this policy places carriers here whatever their risk" + (
                f"; by risk alone: {rows.rule[i]})" if rows.rule[i] else ")")


def _reference_values(pol: Policy, data: pd.DataFrame, measured: Measured, age: np.ndarray,
                      reference: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray, str]:
    if reference is None:
        ok = ~np.isnan(measured.value)
        return age[ok], measured.value[ok], "the women scored here"
    if not isinstance(reference, pd.DataFrame) or "age" not in reference.columns:
        raise SchemaError("age", "reference= must be a DataFrame with age (years) and the policy's risk measure")
    ref_age = pd.to_numeric(reference["age"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    usable = ~np.isnan(ref_age)
    if "status" in reference.columns:
        usable &= reference["status"].astype(str).to_numpy() == "ok"
    got = resolve_measure(reference, pol.measure, ref_age, usable, None)
    ok = ~np.isnan(got.value)
    if not ok.any():
        raise SchemaError("risk", f"reference= has no usable {MEASURE_WORDS[pol.measure]} risk (give risk_5y, or "
                                  "risk with horizon, and age)")
    return ref_age[ok], got.value[ok], "the reference population"


def _percentile(pol: Policy, u, rows: _Rows, live: np.ndarray, age: np.ndarray, measured: Measured,
                data: pd.DataFrame, reference: pd.DataFrame | None) -> None:
    target = pol.category(u.category).rank
    label = pol.category(u.category).label
    candidates = live & (rows.category < target) & ~np.isnan(measured.value)
    if not candidates.any():
        return
    ref_age, ref_risk, whose = _reference_values(pol, data, measured, age, reference)
    band = u.age_band_years
    ref_band = np.floor(ref_age / band)
    for b in np.unique(np.floor(age[candidates] / band)):
        in_band = candidates & (np.floor(age / band) == b)
        pool = ref_risk[ref_band == b]
        lo, hi = b * band, (b + 1) * band
        if pool.size < u.min_reference:
            _flag(rows, in_band, "no_reference",
                  lambda i, pool=pool, lo=lo, hi=hi: f"the '{label}' rule ({MEASURE_WORDS[pol.measure]} risk at or "
                  f"above the {u.percentile:g}th percentile for age) cannot be evaluated: only {pool.size} women aged "
                  f"[{lo:g}, {hi:g}) among {whose} ({u.min_reference} needed); pass reference= (--reference): "
                  "women of her age scored by the same model")
            continue
        cut = float(np.quantile(pool, u.percentile / 100.0))
        hit = in_band & (measured.value >= cut)
        for i in np.flatnonzero(hit):
            rows.category[i] = target
            rows.rule[i] = (f"{MEASURE_WORDS[pol.measure]} risk {_pct(measured.value[i], cut)} is at or above the "
                            f"{u.percentile:g}th percentile ({_pct(cut)}) of the {pool.size} women aged "
                            f"[{lo:g}, {hi:g}) in {whose}")


# ---------------------------------------------------------------------------- output


def _chemoprevention(pol: Policy, data: pd.DataFrame, cohort: pd.DataFrame | None, live: np.ndarray,
                     rows: _Rows) -> tuple[pd.Series, np.ndarray]:
    """The flag (nullable boolean) and a sentence per row for it."""
    n = len(data)
    flag = pd.array([pd.NA] * n, dtype="boolean")
    words = np.full(n, "", dtype=object)
    own = np.array([pol.categories[c].chemoprevention if c >= 0 else False for c in rows.category])
    chemo = pol.chemoprevention
    if chemo is None:
        flag[live] = own[live]
        return pd.Series(flag, index=data.index), words
    sub = recommend_screening(data, chemo, cohort=cohort)
    placed = (sub["status"] == "ok").to_numpy()
    sub_flag = sub["chemoprevention_discussion"].to_numpy(dtype=object)
    for i in np.flatnonzero(live):
        if own[i]:
            flag[i] = True
        elif placed[i]:
            flag[i] = bool(sub_flag[i])
        # else: NA, the chemoprevention threshold could not be evaluated
        if placed[i]:
            words[i] = "Risk-reducing medication: " + sub["rationale"].iat[i].removeprefix(f"{chemo.title}: ")
        else:
            words[i] = f"Risk-reducing medication: not evaluated; {sub['message'].iat[i]}."
    return pd.Series(flag, index=data.index), words


def _assemble(pol: Policy, index: pd.Index, rows: _Rows, live: np.ndarray, age: np.ndarray, measured: Measured,
              data: pd.DataFrame, cohort: pd.DataFrame | None) -> pd.DataFrame:
    n = len(index)
    category = np.full(n, "", dtype=object)
    modality = np.full(n, "", dtype=object)
    supplemental = np.full(n, "", dtype=object)
    interval = np.full(n, np.nan)
    rationale = np.full(n, "", dtype=object)
    chemo_flag, chemo_words = _chemoprevention(pol, data, cohort, live, rows)
    model_name = (np.array([m if isinstance(m, str) else "" for m in data["model"]], dtype=object)
                  if "model" in data.columns else np.full(n, "", dtype=object))
    model = np.array([f", model {m}" if m else "" for m in model_name], dtype=object)
    for i in np.flatnonzero(live):
        cat = pol.categories[rows.category[i]]
        sched = next(s for s in pol.schedules if s.category == cat.id and s.ages.contains(age[i]))
        category[i], modality[i], supplemental[i], interval[i] = cat.id, sched.modality, sched.supplemental, \
            sched.interval_months
        source = f" (from {measured.source[i]}{model[i]})" if measured.source[i] else ""
        by_age = pol.measure == "none" and rows.rule[i].startswith("age ")
        rule = f"age {age[i]:g} is in {sched.ages}" if by_age else rows.rule[i]
        text = (f"{pol.title}: {rule}{source}, so '{cat.label}'. {sched.advice} "
                f"Source: {pol.source.short}.")
        caveat = dict(pol.model_caveats).get(model_name[i])
        if caveat and measured.source[i]:  # the model's risk was used (not, e.g., carrier status alone)
            text += f" Caveat: {caveat}"
        if chemo_words[i]:
            text += f" {chemo_words[i]}"
        rationale[i] = text
    risk_used = np.where(live & (pol.measure != "none"), measured.value, np.nan)
    out = pd.DataFrame(
        {
            "category": category,
            "interval_months": interval,
            "modality": modality,
            "supplemental": supplemental,
            "chemoprevention_discussion": chemo_flag,
            "rationale": rationale,
            "policy": pol.id,
            "policy_version": pol.version,
            "status": rows.status,
            "message": rows.message,
            "risk_measure": pol.measure,
            "risk_used": risk_used,
        },
        index=index,
    )
    out.attrs[POLICY_ATTR] = policy_citation(pol)  # reports cite the policy applied, not one re-loaded by id
    return out


def add_recommendations(scored: pd.DataFrame, cohort: pd.DataFrame | None, policy: str | os.PathLike[str] | Policy,
                        *, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """``scored`` with the recommendation columns appended (what ``riskmodel predict --recommend`` writes).

    The recommendation's ``status`` and ``message`` become ``recommendation_status`` and
    ``recommendation_message`` so that the risk's own ``status`` and ``message`` stay as they are.

    Args:
        scored: the output of :func:`riskmodel.predict_risk` (any index).
        cohort: the table that was scored (same index), or ``None`` if ``scored`` holds its columns.
        policy, reference: as for :func:`recommend_screening`.

    >>> import pandas as pd, riskmodel
    >>> cohort = pd.DataFrame({"age": [52.0], "race": ["white"]})
    >>> out = add_recommendations(riskmodel.predict_risk(cohort), cohort, "uspstf2024")
    >>> out[["status", "category", "interval_months", "recommendation_status"]]
      status category  interval_months recommendation_status
    0     ok  average             24.0                    ok
    """
    return _join(scored, recommend_screening(scored, policy, cohort=cohort, reference=reference))


def _join(scored: pd.DataFrame, rec: pd.DataFrame) -> pd.DataFrame:
    """``scored`` then ``rec``'s columns, its ``status``/``message`` renamed ``recommendation_*``; keeps the policy."""
    rec = rec.rename(columns={"status": "recommendation_status", "message": "recommendation_message"})
    clash = [c for c in rec.columns if c in scored.columns]
    out = pd.concat([scored.drop(columns=clash), rec], axis=1)
    out.attrs = {POLICY_ATTR: rec.attrs[POLICY_ATTR]} if POLICY_ATTR in rec.attrs else {}
    return out


_WHAT_TO_PASS = ("pass the output of riskmodel.screening.add_recommendations(risks, cohort, policy), or "
                 "recommend_screening's output with risks= (the predict_risk output it was made from), or "
                 "predict_risk's output alone")


def clinic_table(results: pd.DataFrame, *, risks: pd.DataFrame | None = None, cohort: pd.DataFrame | None = None,
                 policy: str | os.PathLike[str] | Policy | None = None,
                 need_policy: bool = True) -> tuple[pd.DataFrame, dict[str, str] | None]:
    """The one table FHIR resources and reports are built from, and the policy that was applied.

    Three inputs are accepted; anything else raises ``ValueError`` saying what to pass:

    * the output of :func:`add_recommendations` (risks and recommendations side by side);
    * the output of :func:`recommend_screening` **with** ``risks=``, the table of risks it was
      made from (same index): it holds the recommendations but not the risks, model and horizon;
    * the output of :func:`riskmodel.predict_risk` alone (no recommendation).

    Args:
        results, risks: as above.
        cohort: the table that was scored (same index): ``id``, ``age`` and ``race`` are taken
            from it where the table lacks them.
        policy: the policy that was applied (name, file or :class:`Policy`); default: the one that
            travels with ``results`` (``results.attrs``), set by :func:`recommend_screening`. A
            policy is never re-loaded by its id alone: a table read back from a file needs ``policy=``.
        need_policy: ``False`` where only the policy's id and version (columns) are used (FHIR).

    Returns:
        ``(table, policy)``: the risk's ``status``/``message`` as ``status``/``message``, the
        recommendation's as ``recommendation_status``/``recommendation_message``; ``policy`` is
        the applied policy's :func:`policy_citation`, ``None`` when no recommendation is in the table.
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    cols = set(results.columns)
    if "recommendation_status" in cols or "policy" not in cols:
        if risks is not None:
            raise ValueError("risks= is only for the output of recommend_screening; results already holds the "
                             "risks" + (" (the output of add_recommendations)" if "policy" in cols else ""))
        table = results.copy()
    else:
        missing = [c for c in RECOMMENDATION_COLUMNS if c not in cols]
        if missing:
            raise ValueError(f"results has a 'policy' column but lacks {missing}; {_WHAT_TO_PASS}")
        if risks is None:
            raise ValueError("results is the output of recommend_screening: it holds the recommendations, not the "
                             "risks, model and horizon they came from; pass those as well, e.g. "
                             "write_reports(recs, 'pages', risks=risks, cohort=cohort) or "
                             "risk_assessments(recs, risks=risks, cohort=cohort)")
        if not isinstance(risks, pd.DataFrame) or not risks.index.equals(results.index):
            raise ValueError("risks: its index differs from results'; pass the table recommend_screening was given")
        table = _join(risks, results)
    if not set(_RISK_COLUMNS) & set(table.columns):
        raise ValueError(f"results has no risk column ({', '.join(_RISK_COLUMNS)}); {_WHAT_TO_PASS}")
    if cohort is not None:
        if not isinstance(cohort, pd.DataFrame) or not cohort.index.equals(results.index):
            raise ValueError("cohort: its index differs from results'; pass the table that was scored")
        for name in ("id", "age", "race"):
            if name not in table.columns and name in cohort.columns:
                table[name] = cohort[name]
    applied = applied_policy(table, results.attrs.get(POLICY_ATTR), policy) if need_policy else None
    table.attrs = {}  # nothing is deep-copied per row below
    return table, applied


def policy_citation(policy: Policy) -> dict[str, Any]:
    """What a report cites of the policy that was applied: ``id``, ``version``, ``title``,
    ``citation`` (its source), ``file`` (where it was read from), ``short`` and ``url`` (the
    source's short name and address) and ``categories`` (category id -> its label, for reports)."""
    return {"id": policy.id, "version": policy.version, "title": policy.title, "citation": policy.source.citation,
            "file": policy.path, "short": policy.source.short, "url": policy.source.url,
            "categories": {c.id: c.label for c in policy.categories}}


def applied_policy(table: pd.DataFrame | pd.Series, carried: dict[str, str] | None,
                    policy: str | os.PathLike[str] | Policy | dict[str, str] | None) -> dict[str, str] | None:
    """The policy named by ``table``'s ``policy``/``policy_version`` columns, from ``policy=`` or ``carried``.

    ``table`` may be one row (a ``Series``). Raises ``ValueError`` when neither is given or the
    policy's id and version are not those in the table.
    """
    ids = table.get("policy") if isinstance(table, pd.DataFrame) else [table.get("policy")]
    if ids is None:
        return None
    versions = table.get("policy_version") if isinstance(table, pd.DataFrame) else [table.get("policy_version")]
    versions = [""] * len(ids) if versions is None else versions
    named = {(str(p), str(v)) for p, v in zip(ids, versions, strict=True) if isinstance(p, str) and p}
    if not named:
        return None
    pol = carried if policy is None else policy if isinstance(policy, dict) else policy_citation(load_policy(policy))
    if not isinstance(pol, dict) or not {"id", "version", "title", "citation"} <= set(pol):
        raise ValueError(f"results names the policy {sorted(named)[0][0]!r} but not the file it came from (it was "
                         "read back from a file or built by hand); pass policy= (the shipped name, the policy file, or "
                         "the Policy that was applied): a policy is not re-loaded by its id alone")
    if named != {(pol["id"], pol["version"])}:
        raise ValueError(f"policy=: {pol['id']} {pol['version']} ({pol.get('file')}) is not the policy in results: "
                         + ", ".join(f"{p} {v}" for p, v in sorted(named)))
    return pol
