"""Screening policies: every threshold boundary of every shipped policy, age windows, malformed files."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from riskmodel import cli
from riskmodel.screening import PolicyError, list_policies, load_policy, recommend_screening
from riskmodel.screening.policy import Interval

SHIPPED = sorted(list_policies())
# A reference population whose 97.5th percentile (90%) no threshold test reaches, so that WISDOM's
# "top 2.5% for age" rule is evaluated (and does not fire) at every age band.
REFERENCE = pd.DataFrame({"age": np.repeat(np.arange(20.0, 100.0, 1.0), 50), "risk_5y": 0.9})
MEASURE_COLUMN = {"five_year": "risk_5y", "ten_year": "risk_10y", "lifetime": "risk_lifetime"}


def _recommend(policy: str, ages, risks, **cohort) -> pd.DataFrame:
    """Recommendations for women of ``ages`` with ``risks`` on the policy's own measure."""
    pol = load_policy(policy)
    ages = np.atleast_1d(np.asarray(ages, dtype=float))
    risks = np.broadcast_to(np.asarray(risks, dtype=float), ages.shape)
    data = pd.DataFrame({"age": ages, "status": "ok", "model": "test"})
    column = MEASURE_COLUMN.get(pol.measure, "risk_5y")
    data[column] = risks
    if pol.measure != "five_year":  # the chemoprevention flag reads five-year risk
        data["risk_5y"] = 0.01
    for name, values in cohort.items():
        data[name] = values
    return recommend_screening(data, policy, reference=REFERENCE)


def _inside(iv: Interval, x: float) -> bool:
    """Interval membership written out independently of Interval.contains."""
    lo_ok = x >= iv.lo if iv.lo_closed else x > iv.lo
    hi_ok = x <= iv.hi if iv.hi_closed else x < iv.hi
    return lo_ok and hi_ok


def _boundary_cases():
    for name in SHIPPED:
        pol = load_policy(name)
        for t in pol.thresholds:
            hi = min(t.ages.hi, pol.ages.hi, t.ages.lo + 10.0)
            age = (max(t.ages.lo, pol.ages.lo) + hi) / 2
            for bound in sorted({t.risk.lo, t.risk.hi} - {0.0, 1.0}):
                near = (("below", np.nextafter(bound, 0.0)), ("on", bound), ("above", np.nextafter(bound, 1.0)))
                for where, x in near:
                    yield pytest.param(name, age, float(x), id=f"{name}-{t.category}-{bound:g}-{where}-age{age:g}")


@pytest.mark.parametrize(("policy", "age", "risk"), list(_boundary_cases()))
def test_every_threshold_boundary_from_the_files(policy, age, risk):
    """Just below, on and just above every finite risk bound: exactly one rule claims the value, and
    the recommendation is that rule's category (read from the file, membership written out here)."""
    pol = load_policy(policy)
    claims = [t for t in pol.thresholds if _inside(t.ages, age) and _inside(t.risk, risk)]
    assert len(claims) == 1, f"{len(claims)} thresholds claim risk {risk!r} at age {age}"
    out = _recommend(policy, [age], [risk])
    assert out["status"].iat[0] == "ok", out["message"].iat[0]
    assert out["category"].iat[0] == claims[0].category
    assert out["risk_used"].iat[0] == risk


def _down(x: float) -> float:
    return float(np.nextafter(x, 0.0))


def _up(x: float) -> float:
    return float(np.nextafter(x, 1.0))


# Hand-written expectations, from the sources (not from the files): a wrong bound or bracket fails here.
EXPLICIT = [
    # WISDOM: low < 1.3% at 40-49; average; highest >= 6%
    ("wisdom", 45, _down(0.013), "low"), ("wisdom", 45, 0.013, "average"), ("wisdom", 45, _up(0.013), "average"),
    ("wisdom", 45, _down(0.06), "average"), ("wisdom", 45, 0.06, "highest"), ("wisdom", 45, _up(0.06), "highest"),
    ("wisdom", 55, 0.005, "average"), ("wisdom", 60, _down(0.06), "average"), ("wisdom", 60, 0.06, "highest"),
    # MyPeBS: < 1%, 1-<1.67%, 1.67-<6%, >= 6%
    ("mypebs", 50, _down(0.01), "low"), ("mypebs", 50, 0.01, "average"), ("mypebs", 50, _up(0.01), "average"),
    ("mypebs", 50, _down(0.0167), "average"), ("mypebs", 50, 0.0167, "high"), ("mypebs", 50, _up(0.0167), "high"),
    ("mypebs", 50, _down(0.06), "high"), ("mypebs", 50, 0.06, "very_high"), ("mypebs", 50, _up(0.06), "very_high"),
    # ACR 2023: lifetime >= 20%
    ("acr2023", 45, _down(0.20), "average"), ("acr2023", 45, 0.20, "high"), ("acr2023", 45, _up(0.20), "high"),
    # Chemoprevention: 1.66% (NSABP P-1), 3%
    ("chemoprevention", 50, _down(0.0166), "below_threshold"), ("chemoprevention", 50, 0.0166, "increased"),
    ("chemoprevention", 50, _up(0.0166), "increased"), ("chemoprevention", 50, _down(0.03), "increased"),
    ("chemoprevention", 50, 0.03, "greater_net_benefit"), ("chemoprevention", 50, _up(0.03), "greater_net_benefit"),
]


@pytest.mark.parametrize(("policy", "age", "risk", "expected"), EXPLICIT)
def test_explicit_boundaries(policy, age, risk, expected):
    out = _recommend(policy, [age], [risk])
    assert (out["status"].iat[0], out["category"].iat[0]) == ("ok", expected)


def test_chemoprevention_flag_boundary():
    out = _recommend("chemoprevention", [50, 50, 50], [_down(0.0166), 0.0166, 0.05])
    assert out["chemoprevention_discussion"].tolist() == [False, True, True]
    assert "1.66%" in out["rationale"].iat[1] and "NSABP P-1" in out["rationale"].iat[1]
    # The same flag on a screening policy, from its chemoprevention policy.
    data = pd.DataFrame({"age": [50.0, 50.0], "risk": [_down(0.0166), 0.0166], "horizon": 5.0, "status": "ok",
                         "model": "test"})
    flags = recommend_screening(data, "mypebs")["chemoprevention_discussion"]
    assert flags.tolist() == [False, True]


# (policy, age, expected status, category, modality, interval) at and around every age bound.
AGE_WINDOWS = [
    ("uspstf2024", _down(40.0), "out_of_range", "", "", math.nan),
    ("uspstf2024", 40.0, "ok", "average", "mammography", 24.0),
    ("uspstf2024", _down(75.0), "ok", "average", "mammography", 24.0),
    ("uspstf2024", 75.0, "ok", "average", "individual_decision", math.nan),
    ("uspstf2024", 89.0, "ok", "average", "individual_decision", math.nan),
    ("wisdom", _down(40.0), "out_of_range", "", "", math.nan),
    ("wisdom", 40.0, "ok", "low", "none", math.nan),
    ("wisdom", _down(50.0), "ok", "low", "none", math.nan),
    ("wisdom", 50.0, "ok", "average", "mammography", 24.0),
    ("wisdom", _down(75.0), "ok", "average", "mammography", 24.0),
    ("wisdom", 75.0, "out_of_range", "", "", math.nan),
    ("mypebs", _down(40.0), "out_of_range", "", "", math.nan),
    ("mypebs", 40.0, "ok", "average", "mammography", 24.0),
    ("mypebs", 70.9, "ok", "average", "mammography", 24.0),
    ("mypebs", 71.0, "out_of_range", "", "", math.nan),
    ("acr2023", _down(25.0), "out_of_range", "", "", math.nan),
    ("acr2023", 25.0, "ok", "average", "none", math.nan),
    ("acr2023", _down(40.0), "ok", "average", "none", math.nan),
    ("acr2023", 40.0, "ok", "average", "mammography", 12.0),
    ("chemoprevention", _down(35.0), "out_of_range", "", "", math.nan),
    ("chemoprevention", 35.0, "ok", "below_threshold", "not_addressed", math.nan),
]


@pytest.mark.parametrize(("policy", "age", "status", "category", "modality", "interval"), AGE_WINDOWS)
def test_age_windows(policy, age, status, category, modality, interval):
    # 1.2% five-year (1.2% lifetime under ACR): low under WISDOM at 40-49, average under MyPeBS.
    out = _recommend(policy, [age], [0.012]).iloc[0]
    assert (out["status"], out["category"], out["modality"]) == (status, category, modality)
    assert (math.isnan(out["interval_months"]) and math.isnan(interval)) or out["interval_months"] == interval
    if status == "out_of_range":
        assert out["message"].startswith(f"age={age:g}") and "covers ages" in out["message"]
        assert out["rationale"] == "" and pd.isna(out["chemoprevention_discussion"])



def _age_cases():
    for name in SHIPPED:
        pol = load_policy(name)
        windows = [pol.ages, *(t.ages for t in pol.thresholds), *(s.ages for s in pol.schedules)]
        for bound in sorted({b for w in windows for b in (w.lo, w.hi)} - {math.inf}):
            for where, age in (("below", float(np.nextafter(bound, 0.0))), ("on", bound),
                               ("above", float(np.nextafter(bound, math.inf)))):
                yield pytest.param(name, age, id=f"{name}-age{bound:g}-{where}")


@pytest.mark.parametrize(("policy", "age"), list(_age_cases()))
def test_every_age_bound_from_the_files(policy, age):
    """Around every age bound of every file: out of range exactly outside the policy's ages, and
    inside them the schedule (modality, interval) of her category at her age."""
    pol = load_policy(policy)
    out = _recommend(policy, [age], [0.012]).iloc[0]
    if not _inside(pol.ages, age):
        assert out["status"] == "out_of_range"
        return
    assert out["status"] == "ok", out["message"]
    sched = [s for s in pol.schedules if s.category == out["category"] and _inside(s.ages, age)]
    assert len(sched) == 1
    assert out["modality"] == sched[0].modality and out["supplemental"] == sched[0].supplemental
    assert (np.isnan(sched[0].interval_months) and np.isnan(out["interval_months"])) or \
        out["interval_months"] == sched[0].interval_months

def test_acr_high_risk_schedule_by_age():
    out = _recommend("acr2023", [25.0, _down(30.0), 30.0, 60.0], [0.25])
    assert out["category"].tolist() == ["high"] * 4
    assert out["modality"].tolist() == ["mri", "mri", "mammography", "mammography"]
    assert out["supplemental"].tolist() == ["", "", "mri", "mri"]
    assert (out["interval_months"] == 12).all()


def test_wisdom_highest_is_alternating_every_six_months():
    out = _recommend("wisdom", [45.0], [0.07]).iloc[0]
    assert (out["modality"], out["interval_months"], out["supplemental"]) == ("mammography_mri_alternating", 6.0,
                                                                              "mri")
    assert bool(out["chemoprevention_discussion"]) is True  # WISDOM counsels its highest group
    assert "[6%, 100%]" in out["rationale"] and "Esserman" in out["rationale"]


def test_shipped_policies_cite_and_record_verification():
    for name in SHIPPED:
        pol = load_policy(name)
        assert pol.source.citation and pol.source.year >= 1998 and pol.version
        assert pol.verification, f"{name}: no [[verification]] entries"
    assert not load_policy("mypebs").verified  # its cut-points are not confirmed against the protocol
    assert load_policy("wisdom").verified


def test_unverified_policy_says_so_in_the_message():
    out = _recommend("mypebs", [50.0], [0.012])
    assert "not verified against the primary source: 2 of 3 claims" in out["message"].iat[0]
    assert "not verified" not in _recommend("wisdom", [55.0], [0.012])["message"].iat[0]


# ---------------------------------------------------------------------------- malformed files

GOOD = """
schema = 1
id = "custom"
title = "Custom test policy"
version = "0.1"
measure = "five_year"
ages = "[40, 75)"

[source]
citation = "A clinic's own protocol, 2026."
short = "clinic protocol 2026"
year = 2026

[[category]]
id = "routine"
label = "Routine"

[[category]]
id = "intensive"
label = "Intensive"

[[threshold]]
category = "routine"
ages = "[40, 75)"
risk = "[0%, 3%)"

[[threshold]]
category = "intensive"
ages = "[40, 75)"
risk = "[3%, 100%]"

[[schedule]]
category = "routine"
ages = "[40, 75)"
modality = "mammography"
interval_months = 24
advice = "Mammography every 2 years."

[[schedule]]
category = "intensive"
ages = "[40, 75)"
modality = "mammography"
interval_months = 12
supplemental = "mri"
advice = "Mammography and MRI every year."
"""


def _write(tmp_path, text: str):
    path = tmp_path / "custom.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_custom_policy_file_works(tmp_path):
    pol = load_policy(_write(tmp_path, GOOD))
    data = pd.DataFrame({"age": [50.0, 50.0], "risk": [_down(0.03), 0.03], "horizon": 5.0, "status": "ok",
                         "model": "test"})
    out = recommend_screening(data, str(_write(tmp_path, GOOD)))
    assert out["category"].tolist() == ["routine", "intensive"]
    assert out["policy"].tolist() == ["custom", "custom"] and (out["policy_version"] == "0.1").all()
    assert pol.verification == () and "lists no verification" in out["message"].iat[0]


MALFORMED = [
    ("overlap", ('risk = "[0%, 3%)"', 'risk = "[0%, 3%]"'),
     r"thresholds overlap at ages \[40, 75\): 'routine' \[0%, 3%\] and 'intensive' \[3%, 100%\] both contain 3%"),
    ("gap", ('risk = "[3%, 100%]"', 'risk = "[4%, 100%]"'),
     r"thresholds leave a gap .*between 'routine' \[0%, 3%\) and 'intensive' \[4%, 100%\]"),
    ("point gap", ('risk = "[3%, 100%]"', 'risk = "(3%, 100%]"'),
     r"thresholds leave a gap .*'routine' \[0%, 3%\) and 'intensive' \(3%, 100%\]"),
    ("not to 100%", ('risk = "[3%, 100%]"', 'risk = "[3%, 100%)"'),
     r"gap at ages \[40, 75\): a risk of 100% is in no category"),
    ("age gap", ('ages = "[40, 75)"\nrisk = "[3%', 'ages = "[50, 75)"\nrisk = "[3%'),
     r"thresholds leave a gap at ages \[40, 50\): risk from 3% up to 100% is in no category"),
    ("unknown modality", ('interval_months = 12\nsupplemental', 'interval_months = 12\nmodality_x = 1\nsupplemental'),
     r"\[\[schedule\]\] #2: unknown key\(s\) \['modality_x'\]"),
    ("unknown modality value", ('modality = "mammography"\ninterval_months = 12', 'modality = "thermography"\n'
                                'interval_months = 12'),
     r"\[\[schedule\]\] #2 \(category 'intensive'\): unknown modality 'thermography'; use one of mammography, mri"),
    ("unknown supplemental", ('supplemental = "mri"', 'supplemental = "pet"'), r"unknown supplemental 'pet'"),
    ("missing interval", ("interval_months = 24\n", ""), r"interval_months = None: modality 'mammography' needs"),
    ("missing source", ('[source]\ncitation = "A clinic\'s own protocol, 2026."\nshort = "clinic protocol 2026"\n'
                        "year = 2026\n", ""),
     r"missing \[source\]: every policy must cite its source \(citation, short, year\)"),
    ("empty citation", ('citation = "A clinic\'s own protocol, 2026."', 'citation = ""'),
     r"\[source\] citation is empty"),
    ("source without year", ("year = 2026\n", ""), r"\[source\]: missing year"),
    ("unknown measure", ('measure = "five_year"', 'measure = "two_year"'), r"measure = 'two_year': use one of"),
    ("bad interval", ('ages = "[40, 75)"\n\n[source]', 'ages = "40 to 75"\n\n[source]'),
     r"ages: '40 to 75' is not an interval"),
    ("risk above 100%", ('risk = "[3%, 100%]"', 'risk = "[3%, 120%]"'), r"a risk must be in \[0%, 100%\]"),
    ("unknown category", ('category = "intensive"\nages = "[40, 75)"\nrisk', 'category = "urgent"\nages = "[40, 75)"\n'
                                                                            'risk'),
     r"\[\[threshold\]\] #2: category 'urgent' is not a \[\[category\]\] id"),
    ("schedule gap", ('ages = "[40, 75)"\nmodality = "mammography"\ninterval_months = 12',
                      'ages = "[50, 75)"\nmodality = "mammography"\ninterval_months = 12'),
     r"category 'intensive' has no \[\[schedule\]\] at ages \[40, 50\)"),
    ("wrong schema", ("schema = 1", "schema = 2"), r"schema = 2: this riskmodel reads policy files with schema = 1"),
    ("bad model caveat", ('advice = "Mammography and MRI every year."', 'advice = "Mammography and MRI every year."'
                                                                        '\n\n[model_caveats]\ngail = 3'),
     r"\[model_caveats\] must map model names to a sentence"),
    ("toml syntax", ('title = "Custom test policy"', 'title = "Custom test policy'), r"not valid TOML"),
    ("unknown top-level key", ('version = "0.1"', 'version = "0.1"\nintervals = 3'),
     r"unknown key\(s\) \['intervals'\]"),
]


@pytest.mark.parametrize(("case", "edit", "pattern"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_policy_files_are_rejected_with_a_clear_error(tmp_path, case, edit, pattern):
    old, new = edit
    assert old in GOOD, case
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(PolicyError, match=pattern) as info:
        load_policy(path)
    assert str(path) in str(info.value)  # the error names the file
    assert isinstance(info.value, ValueError)


def test_unreachable_category_is_rejected(tmp_path):
    text = GOOD.replace('[[threshold]]\ncategory = "intensive"\nages = "[40, 75)"\nrisk = "[3%, 100%]"',
                        '[[threshold]]\ncategory = "routine"\nages = "[40, 75)"\nrisk = "[3%, 100%]"')
    with pytest.raises(PolicyError, match="category 'intensive' is never reached"):
        load_policy(_write(tmp_path, text))


def test_unknown_policy_name():
    with pytest.raises(PolicyError, match=re.escape("no shipped policy of that name and no such file; shipped: "
                                                    "acr2023, chemoprevention, mypebs, uspstf2024, wisdom")):
        load_policy("uspstf2016")


def test_interval_parsing():
    assert Interval.parse("[1.66%, 3%)", percent=True).lo == 0.0166
    assert Interval.parse("(40, inf)").hi == math.inf
    for bad in ("[3, 2)", "[40, inf]", "[2, 2)", "40-75", "[a, 3)"):
        with pytest.raises(ValueError):
            Interval.parse(bad)
    with pytest.raises(ValueError, match="only allowed for risks"):
        Interval.parse("[40%, 50)")


@pytest.mark.parametrize("ref", ["custom.toml", "other.toml"])
def test_a_policy_file_that_names_itself_or_a_cycle_is_a_policy_error(tmp_path, ref):
    # custom.toml -> custom.toml, or custom.toml -> other.toml -> custom.toml: once RecursionError.
    text = GOOD.replace('version = "0.1"', f'version = "0.1"\nchemoprevention = "{ref}"', 1)
    path = _write(tmp_path, text)
    (tmp_path / "other.toml").write_text(GOOD.replace('version = "0.1"', 'version = "0.1"\nchemoprevention = '
                                                      '"custom.toml"', 1), encoding="utf-8")
    with pytest.raises(PolicyError, match="names a chemoprevention policy itself") as info:
        load_policy(path)
    assert str(tmp_path) in str(info.value)  # names the file
    assert cli.main(["recommend", str(tmp_path / "none.csv"), "--policy", str(path)]) == 2


def test_a_deeply_nested_policy_file_is_a_policy_error(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace('version = "0.1"', 'version = "0.1"\nnotes = ' + "[" * 5000 + "]" * 5000, 1))
    with pytest.raises(PolicyError, match="nested too deeply") as info:
        load_policy(path)
    assert str(path) in str(info.value)
    assert cli.main(["recommend", str(tmp_path / "none.csv"), "--policy", str(path)]) == 2
    assert f"policy {path}: nested too deeply" in capsys.readouterr().err
