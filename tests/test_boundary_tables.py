"""Issue 16, table boundary: column names, unknown tokens, horizons, booleans and complex numbers, unused columns."""

import warnings

import numpy as np
import pandas as pd
import pytest

import riskmodel
from riskmodel import ColumnWarning
from riskmodel.schema import match_columns, validate


def _woman(**names: str) -> pd.DataFrame:
    """A Black woman of 50 with 3 biopsies and 2 affected relatives, under the given column names."""
    cols = {"age": 50.0, "race": "black", "n_biopsies": 3, "first_degree_relatives": 2}
    return pd.DataFrame({names.get(k, k): [v] for k, v in cols.items()})


def test_columns_spelled_differently_give_the_same_risk():
    canonical = riskmodel.predict_risk(_woman())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ColumnWarning)  # every column is used: no warning
        other = riskmodel.predict_risk(_woman(race="Race", n_biopsies="N_Biopsies",
                                              first_degree_relatives="First_Degree_Relatives", age=" AGE "))
    assert other["status"].iat[0] == "ok"
    assert other["risk"].iat[0] == canonical["risk"].iat[0]
    assert canonical["risk"].iat[0] == pytest.approx(0.0260, abs=5e-5)
    assert other.attrs["columns_used"] == {" AGE ": "age", "Race": "race", "N_Biopsies": "n_biopsies",
                                           "First_Degree_Relatives": "first_degree_relatives"}
    assert other.attrs["columns_ignored"] == []


def test_spaces_and_hyphens_in_names():
    df = pd.DataFrame({"Age": [50.0], "First Degree Relatives": [2], "n-biopsies": [3], "Race": ["black"]})
    out = riskmodel.predict_risk(df)
    assert out["risk"].iat[0] == riskmodel.predict_risk(_woman())["risk"].iat[0]


def test_columns_rename():
    df = _woman(race="ethnicity", n_biopsies="biopsies", first_degree_relatives="fdr", age="age_years")
    out = riskmodel.predict_risk(df, columns={"ethnicity": "race", "biopsies": "n_biopsies",
                                              "fdr": "first_degree_relatives", "age_years": "age"})
    assert out["risk"].iat[0] == riskmodel.predict_risk(_woman())["risk"].iat[0]
    assert out.attrs["columns_used"]["biopsies"] == "n_biopsies"


@pytest.mark.parametrize(("columns", "match"), [
    ({"ethnicity": "ethnic_group"}, r"column 'ethnic_group': columns= maps 'ethnicity' to it, but it is not a "
                                    r"canonical column"),
    ({"nope": "race"}, r"column 'nope': columns= renames it to 'race', but the input has no such column"),
    ({"ethnicity": "race", "fdr": "race"}, r"column 'race': columns= maps both 'ethnicity' and 'fdr' to it"),
    ({"age_years": "age"}, r"column 'age': columns= maps 'age_years' to it, but the input also has a column 'age'"),
])
def test_columns_rename_errors(columns, match):
    df = pd.DataFrame({"age": [50.0], "age_years": [50.0], "ethnicity": ["white"], "fdr": [1]})
    with pytest.raises(riskmodel.SchemaError, match=match):
        riskmodel.predict_risk(df, columns=columns)


def test_two_columns_matching_one_canonical_column_is_an_error():
    with pytest.raises(riskmodel.SchemaError, match=r"'Race', 'RACE ' all match it"):
        validate(pd.DataFrame({"age": [50.0], "Race": [1], "RACE ": [2]}))


def test_lookalike_column_not_used_warns_naming_both():
    df = pd.DataFrame({"age": [50.0], "Age": [40.0], "age_at_menarch": [12]})
    with pytest.warns(ColumnWarning) as record:
        out = riskmodel.predict_risk(df)
    text = [str(w.message) for w in record]
    assert any("'Age'" in t and "'age'" in t and "is read from 'age'" in t for t in text)
    assert any("'age_at_menarch'" in t and "'age_at_menarche'" in t for t in text)
    assert out.attrs["columns_ignored"] == ["Age", "age_at_menarch"]
    assert out.attrs["columns_used"] == {"age": "age"}


def test_missing_required_column_hints_at_a_lookalike():
    with pytest.raises(riskmodel.SchemaError, match=r"column 'age': is required but missing from the input; "
                                                    r"found 'age_years'.*columns=\{'age_years': 'age'\}"):
        riskmodel.predict_risk(pd.DataFrame({"age_years": [50.0]}))


def test_match_columns_is_reused_by_validate_without_a_second_warning():
    df = pd.DataFrame({"AGE": [50.0], "agee": [1]})
    with pytest.warns(ColumnWarning):
        match = match_columns(df)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = validate(df, columns=match)
    assert c.columns_used == {"AGE": "age"} and c.columns_ignored == ("agee",)


def test_canonical_input_unchanged_and_no_rename():
    df = _woman()
    assert match_columns(df).apply(df) is df


# ---- horizon ---------------------------------------------------------------------------------------------

def test_horizon_series_is_aligned_on_the_index():
    df = pd.DataFrame({"age": [40.0, 50.0, 60.0]}, index=["a", "b", "c"])
    h = pd.Series([10.0, 5.0, 1.0], index=["a", "b", "c"])
    ordered = riskmodel.predict_risk(df, horizon=h)
    shuffled = riskmodel.predict_risk(df, horizon=h.loc[["c", "a", "b"]])
    pd.testing.assert_frame_equal(ordered, shuffled)
    assert shuffled["horizon"].tolist() == [10.0, 5.0, 1.0]


def test_horizon_series_with_other_labels_is_an_error():
    df = pd.DataFrame({"age": [40.0, 50.0]}, index=["a", "b"])
    with pytest.raises(ValueError, match=r"missing from it \(first: \['b'\]\).*not in the cohort \(first: \['z'\]\)"):
        riskmodel.predict_risk(df, horizon=pd.Series([5.0, 5.0], index=["a", "z"]))


@pytest.mark.parametrize("text", ["Lifetime", "LIFETIME", " lifetime "])
def test_scalar_lifetime_any_case(text):
    df = pd.DataFrame({"age": [40.0, 50.0]})
    assert riskmodel.predict_risk(df, horizon=text)["risk"].tolist() == \
        riskmodel.predict_risk(df, horizon="lifetime")["risk"].tolist()


@pytest.mark.parametrize("text", ["5", " 5 ", "5.0"])
def test_scalar_number_as_text(text):
    df = pd.DataFrame({"age": [40.0, 50.0]})
    assert riskmodel.predict_risk(df, horizon=text)["risk"].tolist() == riskmodel.predict_risk(df, horizon=5)[
        "risk"].tolist()


@pytest.mark.parametrize(("horizon", "match"), [(True, "a boolean"), (np.bool_(True), "a boolean"),
                                                (5 + 0j, "a complex number")])
def test_scalar_horizon_boolean_or_complex_is_an_error(horizon, match):
    with pytest.raises(ValueError, match=match):
        riskmodel.predict_risk(pd.DataFrame({"age": [50.0]}), horizon=horizon)


def test_per_row_boolean_or_complex_horizon_is_invalid():
    out = riskmodel.predict_risk(pd.DataFrame({"age": [50.0] * 3}), horizon=[True, 5 + 1j, 5])
    assert out["status"].tolist() == ["invalid", "invalid", "ok"]
    assert out["risk"].isna().tolist() == [True, True, False]


# ---- booleans and complex numbers --------------------------------------------------------------------------

@pytest.mark.parametrize(("column", "value", "message"), [
    ("race", True, "race=True: a true/false value is not a code"),
    ("age", True, "age=True: a true/false value is not a number"),
    ("age", 40 + 99j, "age=(40+99j): a complex number is not a number"),
    ("n_biopsies", True, "n_biopsies=True: a true/false value is not a number"),
    ("density", False, "density=False: a true/false value is not a code"),
])
def test_booleans_and_complex_numbers_are_invalid(column, value, message):
    row = {"age": 50.0, column: value}
    df = pd.DataFrame({k: pd.Series([v, 50.0 if k == "age" else 1], dtype=object) for k, v in row.items()})
    out = riskmodel.predict_risk(df)
    if column == "density":  # not read by Gail: reported, still scored
        assert out["status"].iat[0] == "ok" and message in out["message"].iat[0]
        return
    assert out["status"].iat[0] == "invalid" and np.isnan(out["risk"].iat[0])
    assert message in out["message"].iat[0]
    assert out["status"].iat[1] == "ok"


def test_whole_boolean_or_complex_columns_are_invalid():
    out = riskmodel.predict_risk(pd.DataFrame({"age": [True, False]}))
    assert out["status"].tolist() == ["invalid", "invalid"]
    out = riskmodel.predict_risk(pd.DataFrame({"age": np.array([40 + 99j, 50 + 0j])}))
    assert out["status"].tolist() == ["invalid", "invalid"]
    out = riskmodel.predict_risk(pd.DataFrame({"age": [50.0, 50.0], "race": [True, True]}))
    assert out["status"].tolist() == ["invalid", "invalid"]


# ---- real data: yes/no, unknown tokens, unused columns -------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [("Yes", 1.0), ("YES", 1.0), ("y", 1.0), ("No", 0.0), ("n", 0.0),
                                             ("true", 1.0), (True, 1.0), (" no ", 0.0), (1, 1.0), ("0", 0.0)])
def test_atypical_hyperplasia_yes_no(text, value):
    c = validate(pd.DataFrame({"age": [50.0, 50.0], "n_biopsies": [1, 1],
                               "atypical_hyperplasia": pd.Series([text, 0], dtype=object)}))
    assert (c.status == "ok").all()
    assert c.column("atypical_hyperplasia")[0] == value


def test_atypical_hyperplasia_yes_scores_as_1():
    yes = riskmodel.predict_risk(pd.DataFrame({"age": [50.0], "n_biopsies": [1], "atypical_hyperplasia": ["Yes"]}))
    one = riskmodel.predict_risk(pd.DataFrame({"age": [50.0], "n_biopsies": [1], "atypical_hyperplasia": [1]}))
    assert yes["risk"].iat[0] == one["risk"].iat[0]


@pytest.mark.parametrize("token", ["unknown", "Unknown", "UNKNOWN", "NA", "n/a", "not tested", "Not Tested",
                                   "missing", "?", ".", "none", "null"])
def test_unknown_tokens_mean_nan(token):
    df = pd.DataFrame({"age": [50.0], "age_at_menarche": [token], "n_biopsies": [token], "nulliparous": [token],
                       "brca": [token], "density": [token], "atypical_hyperplasia": [token], "prs": [token]})
    out = riskmodel.predict_risk(df)
    assert out["status"].iat[0] == "ok" and out["message"].iat[0] == ""
    assert out["risk"].iat[0] == riskmodel.predict_risk(pd.DataFrame({"age": [50.0]}))["risk"].iat[0]


def test_unknown_race_name_is_still_code_4():
    c = validate(pd.DataFrame({"age": [50.0, 50.0], "race": ["unknown", "Unknown"]}))
    assert c.column("race").tolist() == [4.0, 4.0]


def test_na_values_override():
    df = pd.DataFrame({"age": [50.0, 50.0], "age_at_menarche": ["-9", "unknown"]})
    out = riskmodel.predict_risk(df, na_values=["-9"])
    assert out["status"].iat[0] == "ok"
    assert out["status"].iat[1] == "invalid" and "age_at_menarche='unknown': not a number" in out["message"].iat[1]


@pytest.mark.parametrize(("column", "value"), [("density", "e"), ("density", "Heterogeneously dens"),
                                               ("density", 7), ("density", True)])
def test_bad_value_in_a_column_gail_does_not_read_keeps_the_risk(column, value):
    df = pd.DataFrame({"age": [50.0, 50.0], column: pd.Series([value, None], dtype=object)})
    out = riskmodel.predict_risk(df)
    assert out["status"].tolist() == ["ok", "ok"]
    assert out["risk"].iat[0] == out["risk"].iat[1] and not np.isnan(out["risk"].iat[0])
    assert column in out["message"].iat[0] and "not used by this model" in out["message"].iat[0]
    assert out["message"].iat[1] == ""


def test_bi_rads_density_words():
    c = validate(pd.DataFrame({"age": [50.0] * 4, "density": ["Almost entirely fatty", "Scattered fibroglandular",
                                                              "Heterogeneously dense", "EXTREMELY DENSE"]}))
    assert c.column("density").tolist() == [1.0, 2.0, 3.0, 4.0] and (c.status == "ok").all()


def test_note_then_problem_keeps_both():
    out = riskmodel.predict_risk(pd.DataFrame({"age": [95.0], "density": ["e"]}))
    assert out["status"].iat[0] == "out_of_range"
    assert "age=95" in out["message"].iat[0] and "density='e'" in out["message"].iat[0]


def test_bad_brca_still_costs_the_risk():
    # brca decides whether Gail applies at all, so an unreadable value is not skipped.
    out = riskmodel.predict_risk(pd.DataFrame({"age": [50.0], "brca": ["positive"]}))
    assert out["status"].iat[0] == "invalid"


@pytest.mark.parametrize(("race", "hint"), [("Hispanic", "hispanic_us_born (3) or hispanic_foreign_born (5)"),
                                            ("Latina", "hispanic_us_born (3) or hispanic_foreign_born (5)"),
                                            ("Asian", "chinese (6), japanese (7), filipino (8) or other_asian (11)"),
                                            ("Asian American", "other_asian (11)")])
def test_unspecified_hispanic_or_asian_is_not_scored_and_says_why(race, hint):
    out = riskmodel.predict_risk(pd.DataFrame({"age": [50.0], "race": [race]}))
    assert out["status"].iat[0] == "invalid" and np.isnan(out["risk"].iat[0])
    assert "ambiguous, not scored" in out["message"].iat[0] and hint in out["message"].iat[0]


@pytest.mark.parametrize(("text", "code"), [("Hispanic, US born", 3), ("Hispanic (foreign born)", 5),
                                            ("other asian", 11)])
def test_subgroup_names_with_punctuation(text, code):
    assert validate(pd.DataFrame({"age": [50.0], "race": [text]})).column("race")[0] == code


def test_na_values_numbers_match_numeric_cells():
    out = riskmodel.predict_risk(pd.DataFrame({"age": [50.0, -9.0], "n_biopsies": [-9, 1]}), na_values=["-9"])
    assert out["status"].tolist() == ["ok", "missing"]
    assert out["risk"].iat[0] == riskmodel.predict_risk(pd.DataFrame({"age": [50.0]}))["risk"].iat[0]


# ---- CLI -------------------------------------------------------------------------------------------------------

def test_cli_predict_reads_differently_named_columns_and_says_so(tmp_path, capsys):
    from riskmodel import cli

    src, out = tmp_path / "c.csv", tmp_path / "o.csv"
    pd.DataFrame({"ID": ["w1"], "AGE": [50.0], "Race": ["black"], "N_Biopsies": [3], "Verwandte": [2],
                  "notes": ["x"]}).to_csv(src, index=False)
    assert cli.main(["predict", str(src), "-o", str(out), "--columns", "Verwandte=first_degree_relatives"]) == 0
    got = pd.read_csv(out)
    assert got["risk"].iat[0] == pytest.approx(riskmodel.predict_risk(_woman())["risk"].iat[0], rel=1e-12)
    assert got["ID"].iat[0] == "w1"
    err = capsys.readouterr().err
    assert ("columns used: ID->id, AGE->age, Race->race, N_Biopsies->n_biopsies, "
            "Verwandte->first_degree_relatives; ignored: notes") in err


def test_cli_warns_about_lookalikes_and_rejects_bad_columns_option(tmp_path, capsys):
    from riskmodel import cli

    src = tmp_path / "c.csv"
    pd.DataFrame({"age": [50.0], "age_at_menarch": [12]}).to_csv(src, index=False)
    assert cli.main(["predict", str(src), "-o", str(tmp_path / "o.csv")]) == 0
    err = capsys.readouterr().err
    assert "riskmodel: warning: input column 'age_at_menarch' looks like the canonical column 'age_at_menarche'" in err
    assert "ignored: age_at_menarch" in err
    assert cli.main(["predict", str(src), "--columns", "age_at_menarch"]) == 2
    assert cli.main(["predict", str(src), "--columns", "x=age"]) == 2
    assert "'x': columns= renames it to 'age'" in capsys.readouterr().err


def test_cli_horizon_lifetime_any_case(tmp_path):
    from riskmodel import cli

    src = tmp_path / "c.csv"
    pd.DataFrame({"age": [50.0]}).to_csv(src, index=False)
    assert cli.main(["predict", str(src), "-o", str(tmp_path / "a.csv"), "--horizon", "Lifetime", "-q"]) == 0
    assert pd.read_csv(tmp_path / "a.csv")["horizon"].iat[0] == 40.0


def test_identifier_columns_are_text_whatever_their_header_case(tmp_path):
    """``Exam_ID`` / ``Id`` are matched to ``exam_id`` / ``id``: they are read as text too (no lost zeros)."""
    from riskmodel import cli

    src = tmp_path / "women.csv"
    src.write_text("Id,Age,Race,Exam_ID\n00123,50,1,0000001\n00124,55,1,0000002\n")
    out = tmp_path / "out.csv"
    assert cli.main(["predict", str(src), "-o", str(out), "--keep-input", "-q"]) == 0
    got = pd.read_csv(out, dtype=str)
    assert got["Id"].tolist() == ["00123", "00124"]
    assert got["Exam_ID"].tolist() == ["0000001", "0000002"]


def test_predict_risk_leaves_the_callers_frame_unchanged():
    # A numeric unknown token (na_values=["-9"]) used to be written as NaN into the caller's float column.
    df = pd.DataFrame({"age": [50.0, -9.0], "n_biopsies": [-9, 1], "race": ["white", "white"]})
    before = df.copy()
    out = riskmodel.predict_risk(df, na_values=["-9"])
    pd.testing.assert_frame_equal(df, before)
    assert out["status"].tolist() == ["ok", "missing"]
