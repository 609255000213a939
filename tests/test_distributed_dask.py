"""Cohort scoring on a Dask LocalCluster (2 worker processes) equals pandas, row for row."""

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

import riskmodel
from riskmodel.distributed import predict_risk_dask
from riskmodel.synthetic import make_cohort


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            yield c


def cohort(n: int = 120) -> pd.DataFrame:
    """A synthetic cohort with rows that break rules, a per-row horizon column and a non-default index."""
    data = make_cohort(n, seed=5).iloc[:, :13].astype({"race": object, "prs": object})
    data.loc[3, "age"] = 130.0  # invalid
    data.loc[4, "age"] = np.nan  # missing
    data.loc[7, "race"] = "asian"  # ambiguous name
    data.loc[9, "prs"] = "high"  # not a number
    data.loc[10, ["age_at_menarche", "age_at_first_birth"]] = [14.0, 12.0]  # inconsistent
    data.loc[11, "brca"] = "brca1"  # not applicable
    data["years"] = np.where(np.arange(n) % 4 == 0, "lifetime", "5")
    data.loc[12, "years"] = "-2"
    data.loc[13, "years"] = None
    data.index = pd.Index([f"w{i:04d}" for i in range(n)][::-1], name="woman")  # sorted descending, not a range
    return data


def test_row_for_row_equal_to_pandas(client):
    data = cohort()
    ddf = dd.from_pandas(data, npartitions=5, sort=False)
    out = predict_risk_dask(ddf, horizon="years", details=True)
    assert isinstance(out, dd.DataFrame) and out.npartitions == 5
    got = out.compute()
    want = riskmodel.predict_risk(ddf.compute(), horizon="years", details=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got.index.tolist() == data.index.tolist()
    assert set(got["status"]) >= {"ok", "invalid", "missing", "inconsistent", "not_applicable"}
    assert got.iloc[12]["message"] == "horizon='-2': must be a positive number of years"
    assert got.iloc[13]["status"] == "missing" and got.iloc[0]["horizon"] == 90 - data.iloc[0]["age"]
    assert "prs='high': not a number" in got.iloc[9]["message"]


def test_predict_risk_dispatches_and_keeps_python_objects_without_string_conversion(client):
    data = cohort(60)
    data.iloc[20, data.columns.get_loc("race")] = 12  # a number in a column that also holds text
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(data, npartitions=3, sort=False)
        out = riskmodel.predict_risk(ddf, horizon=5)
        assert isinstance(out, dd.DataFrame)
        got = out.compute()
    # The Dask frame holds the pandas objects themselves: the result is the pandas result.
    pd.testing.assert_frame_equal(got, riskmodel.predict_risk(data, horizon=5), check_exact=True)
    assert got.iloc[20]["message"].startswith("race=12: not a code")


def test_a_partition_of_text_alone_is_scored_like_the_whole_frame(client):
    data = cohort(40).astype({"prs": object})
    data["prs"] = data["prs"].map(lambda v: v if isinstance(v, str) else f"{v:.2f}")
    data.iloc[10:20, data.columns.get_loc("prs")] = "unknown SD"  # one whole partition of text
    ddf = dd.from_pandas(data, npartitions=4, sort=False)
    got = predict_risk_dask(ddf).compute()
    pd.testing.assert_frame_equal(got, riskmodel.predict_risk(ddf.compute()), check_exact=True)
    assert (got["status"].iloc[10:20] == "invalid").all()


def test_whole_column_errors_are_raised_eagerly_as_pandas_raises_them():
    data = cohort(30).assign(prs=None).astype({"prs": object})
    data.iloc[25, data.columns.get_loc("prs")] = "high"
    data.iloc[27, data.columns.get_loc("prs")] = "low"
    ddf = dd.from_pandas(data, npartitions=3, sort=False)
    with pytest.raises(riskmodel.SchemaError) as pandas_error:
        riskmodel.predict_risk(ddf.compute())
    with dask.config.set(scheduler="sync"), pytest.raises(riskmodel.SchemaError) as dask_error:
        predict_risk_dask(ddf)
    assert str(dask_error.value) == str(pandas_error.value).replace("dtype object", "dtype string")
    with pytest.raises(riskmodel.SchemaError, match="'age'"):
        predict_risk_dask(ddf.drop(columns=["age"]))
    with pytest.raises(ValueError, match="column"):
        predict_risk_dask(ddf, horizon="no_such_column")


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"horizon": np.full(30, 5.0)}, "put per-row horizons in a column"),
    ({"exams": "exams.csv"}, "exams="),
    ({"model": "hybrid"}, "trained hybrid model"),
    ({"progress": True}, "progress=True"),
])
def test_options_that_do_not_apply_to_dask_are_refused(kwargs, text):
    ddf = dd.from_pandas(cohort(30), npartitions=2, sort=False)
    with pytest.raises(ValueError, match=text):
        riskmodel.predict_risk(ddf, **kwargs)


def test_a_model_that_reads_mammograms_points_to_torchrun():
    class ExamModel:
        name = "exam-model"
        required_columns = ("age",)
        needs_exams = True

        def score(self, cohort, horizon):  # pragma: no cover - never reached
            raise AssertionError

    ddf = dd.from_pandas(cohort(20), npartitions=2, sort=False)
    with pytest.raises(ValueError, match="torchrun"):
        predict_risk_dask(ddf, model=ExamModel())
    with pytest.raises(TypeError, match=r"dask\.dataframe\.DataFrame"):
        predict_risk_dask(cohort(20))
