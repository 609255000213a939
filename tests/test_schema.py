"""The canonical schema: column errors raise, row errors get a status, rows are never lost."""

import numpy as np
import pandas as pd
import pytest

from riskmodel.schema import RACE_NAMES, SchemaError, validate


def test_missing_required_column_names_it():
    with pytest.raises(SchemaError, match="'age'") as info:
        validate(pd.DataFrame({"race": [1]}))
    assert info.value.column == "age"
    assert isinstance(info.value, ValueError)


def test_column_with_no_numbers_raises():
    with pytest.raises(SchemaError, match="age_at_menarche"):
        validate(pd.DataFrame({"age": [40.0, 50.0], "age_at_menarche": ["twelve", "eleven"]}))


def test_datetime_column_raises():
    with pytest.raises(SchemaError, match=r"'age'.*datetime"):
        validate(pd.DataFrame({"age": pd.to_datetime(["2020-01-01"])}))


def test_duplicate_column_raises():
    df = pd.DataFrame([[40, 41]], columns=["age", "age"])
    with pytest.raises(SchemaError, match="more than once"):
        validate(df)


def test_not_a_dataframe():
    with pytest.raises(TypeError, match="DataFrame"):
        validate({"age": [40]})


def test_bad_cell_flags_only_its_row():
    df = pd.DataFrame({"age": [40, "forty", 50], "n_biopsies": [0, 1, "2"]}, index=[10, 11, 12])
    c = validate(df)
    assert c.status.tolist() == ["ok", "invalid", "ok"]
    assert "age='forty': not a number" in c.message[1]
    assert c.frame.index.tolist() == [10, 11, 12]
    assert c.column("n_biopsies")[2] == 2.0


@pytest.mark.parametrize(
    ("column", "value", "status", "text"),
    [
        ("n_biopsies", 1.5, "invalid", "whole number"),
        ("n_biopsies", -1, "invalid", "whole number"),
        ("first_degree_relatives", 0.5, "invalid", "whole number"),
        ("first_degree_relatives", 99, "invalid", "use NaN for unknown"),
        ("n_biopsies", 99, "invalid", "implausible"),
        ("atypical_hyperplasia", 2, "invalid", "0, 1 or NaN"),
        ("age_at_menarche", 0, "invalid", "> 0"),
        ("age_at_menarche", 60, "inconsistent", "after age"),
        ("age_at_first_birth", 70, "inconsistent", "after age"),
        ("age_at_first_birth", 9, "inconsistent", "before age_at_menarche"),
        ("race", 12, "invalid", "RACE_NAMES"),
        ("race", "hispanic", "invalid", "hispanic_us_born"),
        ("density", "e", "invalid", "one of"),
        ("brca", "BRCA3", "invalid", "one of"),
        ("nulliparous", "maybe", "invalid", "true/false"),
        ("prs", np.inf, "invalid", "finite"),
    ],
)
def test_row_rules(column, value, status, text):
    row = {"age": 50.0, "age_at_menarche": 12.0}
    row[column] = value
    c = validate(pd.DataFrame([row]))
    assert c.status[0] == status
    assert column in c.message[0] and text in c.message[0]


def test_hyperplasia_without_biopsy_is_inconsistent():
    c = validate(pd.DataFrame({"age": [50], "n_biopsies": [0], "atypical_hyperplasia": [1]}))
    assert c.status[0] == "inconsistent"


def test_nulliparous_with_a_birth_age_is_inconsistent():
    c = validate(pd.DataFrame({"age": [50], "nulliparous": [True], "age_at_first_birth": [25]}))
    assert c.status[0] == "inconsistent" and "nulliparous" in c.message[0]


def test_several_problems_are_all_reported_most_basic_status_wins():
    c = validate(pd.DataFrame({"age": [np.nan], "n_biopsies": [-2], "race": ["x"]}))
    assert c.status[0] == "missing"
    assert "age" in c.message[0] and "n_biopsies" in c.message[0] and "race" in c.message[0]


def test_race_names_and_codes():
    names = list(RACE_NAMES)
    c = validate(pd.DataFrame({"age": 50.0, "race": [*names, "White", " other-asian ", "7", 3.0]}))
    expected = [RACE_NAMES[n] for n in names] + [1, 11, 7, 3]
    assert c.column("race").tolist() == expected
    assert (c.status == "ok").all()


@pytest.mark.parametrize(("text", "value"), [("yes", 1.0), ("FALSE", 0.0), ("1", 1.0), ("", np.nan)])
def test_boolean_text(text, value):
    c = validate(pd.DataFrame({"age": [50.0, 51.0], "nulliparous": [text, "no"]}))
    np.testing.assert_array_equal(c.column("nulliparous")[:1], [value])


def test_nullable_boolean_dtype():
    s = pd.Series([True, pd.NA, False], dtype="boolean")
    c = validate(pd.DataFrame({"age": [50.0] * 3, "nulliparous": s}))
    np.testing.assert_array_equal(c.column("nulliparous"), [1.0, np.nan, 0.0])


@pytest.mark.parametrize("blank", ["", "NA", None, np.nan])
def test_blank_codes_are_unknown(blank):
    c = validate(pd.DataFrame({"age": [50.0, 51.0], "race": [blank, "white"], "density": [blank, "b"],
                               "brca": [blank, "negative"]}))
    assert (c.status == "ok").all()
    assert np.isnan(c.column("race")[0]) and np.isnan(c.column("density")[0]) and np.isnan(c.column("brca")[0])


def test_empty_frame():
    c = validate(pd.DataFrame({"age": pd.Series([], dtype=float)}))
    assert c.status.shape == (0,)
