"""Property tests for the Gail model: range, monotonicity, batch independence."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmodel.gail import bcra_absolute_risk

races = st.integers(1, 11)
t1s = st.floats(20.0, 89.0, allow_nan=False)


@st.composite
def profiles(draw):
    t1 = draw(t1s)
    n_biop = draw(st.sampled_from([0, 1, 2, 3, 99]))
    hyp = 99 if n_biop in (0, 99) else draw(st.sampled_from([0, 1, 99]))
    age_men = draw(st.one_of(st.just(99.0), st.floats(7.0, min(t1, 18.0))))
    age1st = draw(st.one_of(st.sampled_from([98.0, 99.0]), st.floats(max(age_men if age_men != 99 else 10, 10), t1)))
    return {
        "ID": 1, "T1": t1, "T2": draw(st.floats(t1 + 1e-3, 90.0)), "N_Biop": n_biop, "HypPlas": hyp,
        "AgeMen": age_men, "Age1st": age1st, "N_Rels": draw(st.sampled_from([0, 1, 2, 5, 99])), "Race": draw(races),
    }


@settings(max_examples=300, deadline=None)
@given(profiles())
def test_risk_is_a_percentage_below_100(p):
    for avg in (0, 1):
        r = bcra_absolute_risk(pd.DataFrame([p]), avg_white=avg).iloc[0]
        assert 0.0 <= r < 100.0


@settings(max_examples=200, deadline=None)
@given(profiles(), st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6))
def test_risk_grows_with_the_horizon(p, fractions):
    ends = sorted(p["T1"] + 1e-3 + f * (90.0 - p["T1"] - 1e-3) for f in fractions)
    df = pd.DataFrame([{**p, "T2": t2} for t2 in ends])
    risk = bcra_absolute_risk(df).to_numpy()
    assert np.all(np.diff(risk) >= 0)


@settings(max_examples=200, deadline=None)
@given(profiles())
def test_risk_grows_with_affected_relatives(p):
    df = pd.DataFrame([{**p, "N_Rels": k} for k in (0, 1, 2, 3)])
    risk = bcra_absolute_risk(df).to_numpy()
    assert np.all(np.diff(risk) >= 0)
    if p["Race"] not in (3, 5):  # the Hispanic models' relatives effect is positive but small
        assert risk[1] > risk[0]


@settings(max_examples=50, deadline=None)
@given(st.lists(profiles(), min_size=1, max_size=40), st.integers(1, 7))
def test_rows_are_independent_of_batch_and_chunking(rows, chunk):
    df = pd.DataFrame(rows)
    whole = bcra_absolute_risk(df).to_numpy()
    chunked = bcra_absolute_risk(df, chunk_size=chunk).to_numpy()
    single = np.array([bcra_absolute_risk(df.iloc[[i]]).iloc[0] for i in range(len(df))])
    np.testing.assert_array_equal(whole, chunked)
    np.testing.assert_array_equal(whole, single)
