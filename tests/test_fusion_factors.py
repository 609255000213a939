"""FactorEncoder: encoding of canonical risk factors and explicit, reported imputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from riskmodel.fusion import IMPUTED_COLUMNS, FactorEncoder
from riskmodel.gail import bcra_relative_risk, canonical_to_bcra
from riskmodel.synthetic import make_cohort

FEATURES = ["age_z", "density_a", "density_c", "density_d", "fdr_1", "fdr_2plus", "brca1", "brca2",
            "brca_missing", "prs", "prs_missing", "gail_log_rr"]


def _factors(cohort: pd.DataFrame) -> pd.DataFrame:
    drop = ("image_factor", "time", "event")
    return cohort[[c for c in cohort.columns if c not in drop and not c.startswith("true_")]]


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return _factors(make_cohort(3000, seed=7))


@pytest.fixture(scope="module")
def encoder(cohort) -> FactorEncoder:
    return FactorEncoder().fit(cohort)


def _col(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, FEATURES.index(name)]


def test_features_and_observed_encoding(cohort, encoder):
    x, imputed = encoder.transform(cohort, return_imputed=True)
    assert encoder.feature_names_ == FEATURES and list(encoder.get_feature_names_out()) == FEATURES
    assert x.dtype == np.float32 and x.shape == (len(cohort), len(FEATURES))
    np.testing.assert_allclose(_col(x, "age_z"), (cohort["age"] - 60) / 10, rtol=1e-6)
    dens = cohort["density"].to_numpy()
    np.testing.assert_array_equal(x[:, 1:4], np.column_stack([dens == "a", dens == "c", dens == "d"]))
    rel = cohort["first_degree_relatives"].to_numpy()
    np.testing.assert_array_equal(x[:, 4:6], np.column_stack([rel == 1, rel >= 2]))
    brca = cohort["brca"].to_numpy()
    np.testing.assert_array_equal(x[:, 6:9], np.column_stack([brca == "BRCA1", brca == "BRCA2", np.zeros(len(x))]))
    np.testing.assert_allclose(_col(x, "prs"), cohort["prs"], rtol=1e-6)
    assert (_col(x, "prs_missing") == 0).all()
    # Everything is known in the synthetic cohort: nothing imputed.
    assert list(imputed.columns) == list(IMPUTED_COLUMNS) and not imputed.to_numpy().any()
    assert imputed.index.equals(cohort.index)
    np.testing.assert_array_equal(encoder.fit_transform(cohort), x)


def test_gail_log_rr_matches_bcra_without_family_history(cohort, encoder):
    x = encoder.transform(cohort)
    bcra = canonical_to_bcra(cohort)
    bcra["N_Rels"] = 99  # family history has its own columns
    rr = bcra_relative_risk(bcra)
    expected = np.log(np.where(cohort["age"] < 50, rr["RR_Star1"], rr["RR_Star2"]))
    np.testing.assert_allclose(_col(x, "gail_log_rr"), expected, rtol=1e-6, atol=1e-6)
    assert _col(x, "gail_log_rr").std() > 0.1


def test_unknown_density_uses_image_probabilities_else_training_frequencies(cohort, encoder):
    rows = cohort.iloc[:4].copy()
    rows["density"] = [None, None, "d", None]
    proba = np.array([[0.1, 0.2, 0.3, 0.4], [np.nan] * 4, [0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 1.0]])
    x, imputed = encoder.transform(rows, density_proba=proba, return_imputed=True)
    freq = (cohort["density"].to_numpy()[:, None] == np.array(["a", "b", "c", "d"])).mean(axis=0)
    np.testing.assert_allclose(encoder.density_freq_, freq)
    np.testing.assert_allclose(x[0, 1:4], [0.1, 0.3, 0.4], rtol=1e-6)  # expected dummies under the image head
    np.testing.assert_allclose(x[1, 1:4], freq[[0, 2, 3]], rtol=1e-6)  # no probabilities: training marginal
    np.testing.assert_array_equal(x[2, 1:4], [0, 0, 1])  # observed density wins over the image head
    np.testing.assert_array_equal(x[3, 1:4], [0, 0, 1])
    assert (x[1, 1:4] > 0).all()  # never silently zero (zero would mean "density b")
    assert imputed["density_from_image"].tolist() == [True, False, False, True]
    assert imputed["density_marginal"].tolist() == [False, True, False, False]
    assert encoder.imputed_.equals(imputed)
    without = encoder.transform(rows)
    np.testing.assert_allclose(without[[0, 1, 3], 1:4], np.tile(freq[[0, 2, 3]], (3, 1)), rtol=1e-6)


def test_unknown_prs_brca_family_history_and_gail(cohort, encoder):
    rows = cohort.iloc[:3].copy()
    rows["prs"] = [np.nan, 1.5, np.nan]
    rows["brca"] = [None, "BRCA2", None]
    rows["first_degree_relatives"] = [np.nan, 2, 0]
    for c in ("n_biopsies", "atypical_hyperplasia", "age_at_menarche", "age_at_first_birth", "nulliparous"):
        rows[c] = rows[c].astype(object)
        rows.loc[rows.index[0], c] = None
    rows["race"] = [1, rows["race"].iloc[1], rows["race"].iloc[2]]
    x, imputed = encoder.transform(rows, return_imputed=True)
    # PRS: its population mean (E[z] = 0) plus an indicator.
    np.testing.assert_array_equal(_col(x, "prs")[[0, 2]], [0, 0])
    np.testing.assert_array_equal(_col(x, "prs_missing"), [1, 0, 1])
    assert imputed["prs"].tolist() == [True, False, True]
    # BRCA: training carrier frequencies plus an indicator.
    brca = cohort["brca"].to_numpy()
    freq = np.array([(brca == "BRCA1").mean(), (brca == "BRCA2").mean()])
    assert freq.sum() > 0
    np.testing.assert_allclose(x[0, 6:8], freq, rtol=1e-5)
    np.testing.assert_array_equal(x[:, 8], [1, 0, 1])
    np.testing.assert_array_equal(x[1, 6:9], [0, 1, 0])
    # Family history: training frequencies of 1 and >= 2 relatives.
    rel = cohort["first_degree_relatives"].to_numpy()
    np.testing.assert_allclose(x[0, 4:6], [(rel == 1).mean(), (rel >= 2).mean()], rtol=1e-5)
    assert imputed["family_history"].tolist() == [True, False, False]
    # Gail factors unknown: BCRA's unknown codes, the reference category (log RR 0 for a white woman).
    assert _col(x, "gail_log_rr")[0] == 0.0
    assert imputed["gail"].tolist() == [True, False, False]


def test_absent_columns_are_imputed_and_reported(cohort, encoder):
    rows = cohort.iloc[:5].drop(columns=["density", "prs", "brca", "n_biopsies"])
    x, imputed = encoder.transform(rows, return_imputed=True)
    assert imputed[["density_marginal", "prs", "brca", "gail"]].all().all()
    assert not imputed["family_history"].any()
    assert (_col(x, "prs_missing") == 1).all() and (_col(x, "brca_missing") == 1).all()


def test_groups_follow_the_training_columns(cohort):
    small = cohort[["age", "density", "prs"]]
    enc = FactorEncoder().fit(small)
    assert enc.factors_ == ["age", "density", "prs"]
    assert enc.feature_names_ == ["age_z", "density_a", "density_c", "density_d", "prs", "prs_missing"]
    only = FactorEncoder(factors=("density",)).fit(cohort)
    assert only.feature_names_ == ["age_z", "density_a", "density_c", "density_d"]
    assert only.transform(cohort).shape == (len(cohort), 4)
    with pytest.raises(ValueError, match="unknown group"):
        FactorEncoder(factors=("density", "bmi")).fit(cohort)
    with pytest.raises(ValueError, match="needs known values of column 'brca'"):
        FactorEncoder(factors=("brca",)).fit(small)
    with pytest.raises(ValueError, match="sequence of group names"):
        FactorEncoder(factors="density").fit(cohort)


def test_sklearn_conventions(cohort, encoder):
    twin = clone(encoder)
    assert twin.get_params() == {"factors": None} and not hasattr(twin, "feature_names_")
    with pytest.raises(NotFittedError):
        twin.transform(cohort)
    assert twin.set_params(factors=["prs"]).factors == ["prs"]


def test_bad_inputs_raise(cohort, encoder):
    rows = cohort.iloc[:3].copy()
    with pytest.raises(ValueError, match=r"density_proba must have shape \(3, 4\)"):
        encoder.transform(rows, density_proba=np.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="summing to 1"):
        encoder.transform(rows, density_proba=np.full((3, 4), 0.3))
    with pytest.raises(ValueError, match="partly NaN"):
        encoder.transform(rows, density_proba=np.array([[0.5, 0.5, np.nan, 0.0]] * 3))
    bad = rows.copy()
    bad["density"] = ["a", "x", "b"]
    with pytest.raises(ValueError, match="row 1: density='x'"):
        encoder.transform(bad)
    bad = rows.copy()
    bad["age"] = [50.0, np.nan, 60.0]
    with pytest.raises(ValueError, match="age: missing"):
        encoder.transform(bad)
    bad = rows.copy()
    bad["n_biopsies"] = [np.nan, 0, 0]
    bad["atypical_hyperplasia"] = [1.0, np.nan, np.nan]
    with pytest.raises(ValueError, match="rejected by the Gail model's rules"):
        encoder.transform(bad)
    with pytest.raises(ValueError, match="DataFrame"):
        encoder.transform(rows.to_numpy())
    with pytest.raises(ValueError, match="'age'"):
        FactorEncoder().fit(rows.drop(columns="age"))


# ------------------------------------------------------------------ the "literature" group


def test_literature_log_rr_adds_published_figures(cohort):
    enc = FactorEncoder(factors=["literature"]).fit(cohort)
    assert enc.feature_names_ == ["age_z", "literature_log_rr"]
    x = enc.transform(cohort)
    bcra = canonical_to_bcra(cohort)  # family history included this time
    rr = bcra_relative_risk(bcra)
    gail = np.log(np.where(cohort["age"] < 50, rr["RR_Star1"], rr["RR_Star2"]))
    age = cohort["age"].to_numpy()
    # BCSC v1 density relative hazards vs b (Tice 2008), < 65 and >= 65; PRS: ln 1.61 per SD, normalised.
    rh = np.where((age < 65)[:, None], [[0.48107, 1.0, 1.5506, 2.0119]], [[0.65706, 1.0, 1.3881, 1.4499]])
    k = cohort["density"].map({"a": 0, "b": 1, "c": 2, "d": 3}).to_numpy()
    beta = np.log(1.61)
    expected = gail + np.log(rh[np.arange(len(k)), k]) + beta * cohort["prs"].to_numpy() - beta**2 / 2
    np.testing.assert_allclose(x[:, 1], expected, rtol=1e-4, atol=1e-4)


def test_literature_unknowns_are_marginalised_and_reported(cohort):
    enc = FactorEncoder(factors=["literature"]).fit(cohort)
    rows = cohort.iloc[:3].copy()
    rows["density"] = [None, None, "b"]
    rows["prs"] = [np.nan, 0.5, np.nan]
    proba = np.array([[0.0, 0.0, 0.0, 1.0], [np.nan] * 4, [np.nan] * 4])
    x, imputed = enc.transform(rows, density_proba=proba, return_imputed=True)
    known = rows.copy()
    known["density"] = ["d", "b", "b"]
    known["prs"] = [0.0, 0.5, 0.0]
    base = FactorEncoder(factors=["literature"]).fit(cohort).transform(known)[:, 1]
    beta = np.log(1.61)
    # Row 0: density from the image (all on d) and an unknown PRS, whose term is 0 (E[exp(bz - b^2/2)] = 1),
    # whereas a known PRS of 0 contributes -b^2/2.
    np.testing.assert_allclose(x[0, 1], base[0] + beta**2 / 2, atol=1e-5)
    # Row 1: density marginal under the training frequencies: log of the expected relative hazard.
    freq = np.array([(cohort["density"] == d).mean() for d in "abcd"])
    rh = [0.48107, 1.0, 1.5506, 2.0119] if rows["age"].iloc[1] < 65 else [0.65706, 1.0, 1.3881, 1.4499]
    np.testing.assert_allclose(x[1, 1], base[1] + np.log(freq @ rh), atol=1e-5)
    assert imputed["density_from_image"].tolist() == [True, False, False]
    assert imputed["density_marginal"].tolist() == [False, True, False]
    assert imputed["prs"].tolist() == [True, False, True]


def test_literature_is_only_used_when_asked_and_round_trips(cohort):
    assert "literature_log_rr" not in FactorEncoder().fit(cohort).feature_names_
    enc = FactorEncoder(factors=["literature", "brca"]).fit(cohort)
    again = FactorEncoder.from_dict(enc.to_dict())
    np.testing.assert_array_equal(again.transform(cohort.iloc[:50]), enc.transform(cohort.iloc[:50]))
    with pytest.raises(ValueError, match=r"literature.*density"):
        FactorEncoder(factors=["literature"]).fit(cohort.assign(density=None))
