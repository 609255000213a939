"""The Gail model against BCRA 2.1.2's own outputs and the spec's worked examples and quirks."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskmodel.gail import (
    BCRA_COLUMNS,
    bcra_absolute_risk,
    bcra_recode_check,
    bcra_relative_risk,
    load_tables,
)

DATA = Path(__file__).parent / "data" / "bcra_example.csv"
RTOL = 1e-12


@pytest.fixture(scope="module")
def ref() -> pd.DataFrame:
    return pd.read_csv(DATA, float_precision="round_trip", keep_default_na=False, na_values=[])


@pytest.fixture(scope="module")
def inputs(ref) -> pd.DataFrame:
    return ref[list(BCRA_COLUMNS)].astype(float)


def _numeric(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s.replace("NA", np.nan)).to_numpy(dtype=float)


def _assert_close_with_same_na(got, expected):
    got = np.asarray(got, dtype=float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    m = ~np.isnan(expected)
    rel = np.abs(got[m] - expected[m]) / np.abs(expected[m])
    assert rel.max() < RTOL, rel.max()


@pytest.mark.parametrize(("avg", "column"), [(0, "abs_risk"), (1, "abs_risk_avg")])
def test_absolute_risk_reproduces_bcra(inputs, ref, avg, column):
    got = bcra_absolute_risk(inputs, avg_white=avg)
    assert got.index.equals(inputs.index)
    _assert_close_with_same_na(got, _numeric(ref[column]))


def test_relative_risk_reproduces_bcra(inputs, ref):
    rr = bcra_relative_risk(inputs)
    _assert_close_with_same_na(rr["RR_Star1"], _numeric(ref["rel_risk_under50"]))
    _assert_close_with_same_na(rr["RR_Star2"], _numeric(ref["rel_risk_over50"]))
    np.testing.assert_array_equal(rr["PatternNumber"].to_numpy(), _numeric(ref["pattern_number"]))


def _as_bcra_text(v) -> str:
    if isinstance(v, float):
        if np.isnan(v):
            return "NA"
        return str(int(v)) if v.is_integer() else repr(v)
    return str(v)


@pytest.mark.parametrize(
    "column",
    ["NB_Cat", "AM_Cat", "AF_Cat", "NR_Cat", "R_Hyp", "CharRace", "set_T1_missing", "set_T2_missing",
     "set_HyperP_missing", "set_R_Hyp_missing", "set_Race_missing"],
)
def test_recode_check_reproduces_bcra(inputs, ref, column):
    rc = bcra_recode_check(inputs)
    assert rc[column].map(_as_bcra_text).tolist() == ref[column].astype(str).tolist()


def test_error_flags_identical(inputs, ref):
    rc = bcra_recode_check(inputs)
    assert rc["Error_Ind"].tolist() == ref["error_flag"].astype(int).tolist()


def _one(**kw) -> pd.DataFrame:
    row = {"ID": 1, "T1": 40.0, "T2": 45.0, "N_Biop": 99, "HypPlas": 99, "AgeMen": 12, "Age1st": 25,
           "N_Rels": 1, "Race": 1}
    row.update(kw)
    return pd.DataFrame([row])


# Worked examples from the spec (BCRA's outputs, percent, 6 decimals).
WORKED = [
    (dict(), 3.028122, 3.028122, 1.098937, 0.578745),
    (dict(T2=90.0), 3.028122, 3.028122, 18.794326, 12.368168),
    (dict(Race=2), 2.102185, 2.102185, 0.904548, 0.590779),
    (dict(Race=3), 1.489622, 1.489622, 0.677565, 0.607262),
    (dict(Race=5), 5.124253, 5.124253, 0.831846, 0.379385),
    (dict(Race=6), 4.135525, 4.135525, 0.892632, 0.455222),
    (dict(T1=47.3, T2=52.3, N_Biop=2, HypPlas=1, AgeMen=11, Age1st=98, N_Rels=2),
     31.062395, 17.460007, 13.165545, 1.115598),
    (dict(T1=60.0, T2=65.0, N_Biop=1, HypPlas=0, AgeMen=14, Age1st=22, N_Rels=0),
     1.964661, 1.472965, 1.384293, 1.780365),
]


@pytest.mark.parametrize(("kw", "rr1", "rr2", "absr", "avg"), WORKED)
def test_worked_examples(kw, rr1, rr2, absr, avg):
    df = _one(**kw)
    rr = bcra_relative_risk(df).iloc[0]
    assert round(rr["RR_Star1"], 6) == rr1
    assert round(rr["RR_Star2"], 6) == rr2
    assert round(bcra_absolute_risk(df).iloc[0], 6) == absr
    assert round(bcra_absolute_risk(df, avg_white=1).iloc[0], 6) == avg


def test_race_1_and_4_identical():
    rng = np.random.default_rng(0)
    n = 80
    df = pd.DataFrame({
        "ID": range(n), "T1": rng.uniform(20, 85, n), "N_Biop": rng.choice([0, 1, 2, 99], n), "HypPlas": 99,
        "AgeMen": rng.choice([10, 12.5, 15, 99], n), "Age1st": rng.choice([18, 22, 27, 33, 98, 99], n),
        "N_Rels": rng.choice([0, 1, 2, 99], n), "Race": 1,
    })
    df["T2"] = np.minimum(df["T1"] + rng.uniform(0.5, 30, n), 90)
    df4 = df.assign(Race=4)
    for avg in (0, 1):
        np.testing.assert_array_equal(bcra_absolute_risk(df, avg_white=avg), bcra_absolute_risk(df4, avg_white=avg))


class TestQuirks:
    """Spec §7: behaviours a faithful reimplementation reproduces."""

    def test_no_biopsy_with_hyperplasia_answer_is_error_a(self):
        rc = bcra_recode_check(_one(N_Biop=0, HypPlas=0)).iloc[0]
        assert rc["Error_Ind"] == 1 and rc["NB_Cat"] == "A"
        assert np.isnan(bcra_absolute_risk(_one(N_Biop=0, HypPlas=0)).iloc[0])

    def test_requirement_b(self):
        rc = bcra_recode_check(_one(N_Biop=2, HypPlas=5)).iloc[0]
        assert rc["Error_Ind"] == 1 and rc["NB_Cat"] == "B" and rc["set_HyperP_missing"] == "B"

    @pytest.mark.parametrize("n_biop", [0.5, -1, 3, 150])
    def test_odd_biopsy_counts_are_two_plus(self, n_biop):
        assert bcra_recode_check(_one(N_Biop=n_biop, HypPlas=99)).iloc[0]["NB_Cat"] == 2

    def test_relatives_two_and_a_half_is_two(self):
        assert bcra_recode_check(_one(N_Rels=2.5)).iloc[0]["NR_Cat"] == 2

    @pytest.mark.parametrize("n_rels", [-1, 0.5, 1.5, 100])
    def test_bad_relatives_are_errors(self, n_rels):
        assert bcra_recode_check(_one(N_Rels=n_rels)).iloc[0]["Error_Ind"] == 1

    def test_unknown_hyperplasia_factor_is_not_an_error_but_gives_na(self):
        df = _one(N_Biop=150, HypPlas=5)
        rc = bcra_recode_check(df).iloc[0]
        assert rc["Error_Ind"] == 0 and np.isnan(rc["R_Hyp"])
        assert np.isnan(bcra_relative_risk(df).iloc[0]["RR_Star1"])
        assert np.isnan(bcra_absolute_risk(df).iloc[0])
        # ... but the average-woman risk needs no RR
        assert np.isfinite(bcra_absolute_risk(df, avg_white=1).iloc[0])

    def test_no_biopsy_with_unknown_hyperplasia_is_accepted(self):
        rc = bcra_recode_check(_one(N_Biop=0, HypPlas=np.nan)).iloc[0]
        assert rc["Error_Ind"] == 0 and rc["R_Hyp"] == 1.0

    @pytest.mark.parametrize("age1st", [5, 50, 100])  # before menarche, after T1, out of range
    def test_age_at_first_birth_unchecked_for_african_american(self, age1st):
        assert bcra_recode_check(_one(Race=2, Age1st=age1st)).iloc[0]["Error_Ind"] == 0
        assert bcra_recode_check(_one(Race=1, Age1st=age1st)).iloc[0]["Error_Ind"] == 1

    def test_hispanic_us_born_invalid_menarche_stays_error_but_rr_computed(self):
        df = _one(Race=3, AgeMen=0)  # AgeMen <= 0 is invalid; Age1st is still fine
        rc = bcra_recode_check(df).iloc[0]
        assert rc["Error_Ind"] == 1 and rc["AM_Cat"] == 0
        assert np.isfinite(bcra_relative_risk(df).iloc[0]["RR_Star1"])
        assert np.isnan(bcra_absolute_risk(df).iloc[0])

    def test_hispanic_requirement_a_shows_zero_but_stays_error(self):
        rc = bcra_recode_check(_one(Race=5, N_Biop=0, HypPlas=1)).iloc[0]
        assert rc["NB_Cat"] == 0 and rc["Error_Ind"] == 1 and np.isnan(rc["R_Hyp"])

    def test_hispanic_first_birth_regrouping(self):
        cats = {a: bcra_recode_check(_one(Race=3, Age1st=a)).iloc[0]["AF_Cat"] for a in (18, 99, 22, 27, 33, 98)}
        assert cats == {18: 0, 99: 0, 22: 1, 27: 1, 33: 2, 98: 2}

    def test_raw_ind_0_loses_hispanic_nulliparity(self):
        # Categories given directly: AF 2 is always regrouped to 1 for Hispanic women.
        cat = _one(Race=5, N_Biop=0, HypPlas=99, AgeMen=0, Age1st=2, N_Rels=0)
        assert bcra_recode_check(cat, raw_ind=0).iloc[0]["AF_Cat"] == 1
        raw = _one(Race=5, N_Biop=0, HypPlas=99, AgeMen=15, Age1st=98, N_Rels=0)
        assert bcra_recode_check(raw).iloc[0]["AF_Cat"] == 2

    def test_raw_ind_0_matches_raw_for_precategorised_inputs(self, inputs):
        rc = bcra_recode_check(inputs)
        ok = (rc["Error_Ind"] == 0) & inputs["Race"].isin([1, 2, 4, 6, 7, 8, 9, 10, 11])
        cats = inputs[ok].copy()
        cats["N_Biop"] = rc.loc[ok, "NB_Cat"].astype(float)
        for raw, cat in (("AgeMen", "AM_Cat"), ("Age1st", "AF_Cat"), ("N_Rels", "NR_Cat")):
            cats[raw] = rc.loc[ok, cat]
        np.testing.assert_allclose(bcra_absolute_risk(cats, raw_ind=0), bcra_absolute_risk(inputs[ok]), rtol=1e-15)

    @pytest.mark.parametrize("race", [0, 12, -1, 1.5, 99, np.nan])
    def test_invalid_race_flagged_even_alone(self, race):
        # BCRA fails when no row in a call has a valid race (§7.7); we always flag the row.
        df = _one(Race=race)
        rc = bcra_recode_check(df).iloc[0]
        assert rc["Error_Ind"] == 1 and rc["set_Race_missing"] == "U" and rc["CharRace"] == "??"
        assert np.isnan(bcra_absolute_risk(df).iloc[0])

    def test_young_ages_accepted(self):
        assert np.isfinite(bcra_absolute_risk(_one(T1=20.0, T2=25.0, Age1st=99)).iloc[0])

    @pytest.mark.parametrize(("t1", "t2"), [(19.9, 25), (90, 91), (50, 50), (50, 90.5), (np.nan, 50)])
    def test_age_errors(self, t1, t2):
        assert bcra_recode_check(_one(T1=t1, T2=t2, Age1st=99)).iloc[0]["Error_Ind"] == 1

    def test_avg_white_other_races_use_own_rates(self):
        # Race 2 "average" is its own composite rate with RR = 1, 1-AR = 1 (spec §7.8).
        df = _one(Race=2)
        t = load_tables()
        lam1, lam2 = t.lambda1[2, 4], t.lambda2[2, 4]  # ages 40-44 band
        h = lam1 + lam2
        expected = 100 * lam1 / h * (1 - np.exp(-h * 5))
        assert bcra_absolute_risk(df, avg_white=1).iloc[0] == pytest.approx(expected, rel=1e-12)


def test_tables_have_provenance_and_shapes():
    t = load_tables()
    assert t.lambda1.shape == (12, 14) and t.beta.shape == (12, 6)
    assert np.isnan(t.lambda1[0]).all() and np.isfinite(t.lambda1[1:]).all()
    sources = (Path(__file__).parents[1] / "riskmodel" / "gail" / "data" / "SOURCES.md").read_text()
    assert "BCRA 2.1.2" in sources and "SEER" in sources
