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


# --- Long text columns are parsed once per distinct cell (schema._parse): same outcome as cell by cell ----------

_MESSY_TEXT = ["1", "2", " 3 ", "white", "White", "african-american", "hispanic", "asian", "unknown", "NA", "n/a",
               "", " ", "9", "99", "0", "0.0", "1.0", "a", "D", "b ", "x", "brca1", "BRCA2", "negative", "yes",
               "No", "true", "FALSE", "12", "12.5", "1e1", "-9", "nan", "twelve", "asian american", "other"]


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA])
def test_long_text_columns_read_as_cell_by_cell(monkeypatch, missing):
    import riskmodel.schema as schema

    rng = np.random.default_rng(0)
    n = 400
    pool = np.array([*_MESSY_TEXT, missing], dtype=object)
    columns = ["race", "density", "brca", "nulliparous", "atypical_hyperplasia", "n_biopsies", "age_at_menarche",
               "first_degree_relatives", "prs"]
    df = pd.DataFrame({name: pool[rng.integers(0, len(pool), n)] for name in columns}, dtype=object)
    df.insert(0, "age", rng.choice(np.array(["45", "50.5", "abc", "", None, "130", "70"], dtype=object), n))
    for na_values in (None, ["-9", "x"]):
        fast = validate(df, na_values=na_values)
        assert fast.status.tolist() != ["ok"] * n  # the pool has invalid cells: messages are compared too
        monkeypatch.setattr(schema, "_FEW_ROWS", 10**9)  # every column cell by cell
        slow = validate(df, na_values=na_values)
        monkeypatch.undo()
        pd.testing.assert_frame_equal(fast.frame, slow.frame)
        assert fast.status.tolist() == slow.status.tolist()
        assert fast.message.tolist() == slow.message.tolist()


def test_long_text_column_with_mixed_cells_is_read_cell_by_cell():
    import riskmodel.schema as schema

    # Not all text (a bool and an int hash like "1"-free values but read differently), or mixed missing kinds:
    # no distinct-cell shortcut.
    assert schema._distinct_cells(pd.Series(["1", True, 1] * 30, dtype=object)) is None
    assert schema._distinct_cells(pd.Series(["1", None, np.nan] * 30, dtype=object)) is None
    codes, cells = schema._distinct_cells(pd.Series(["b", None, "a", "b"] * 30, dtype=object))
    assert cells.tolist() == ["b", "a", None] and codes[:4].tolist() == [0, 2, 1, 0]
    c = validate(pd.DataFrame({"age": [50] * 90, "race": [True, "white", 1] * 30}, dtype=object))
    assert c.status.tolist()[:3] == ["invalid", "ok", "ok"]
    assert "true/false value is not a code" in c.message[0]


def test_long_text_column_with_no_number_still_raises_naming_the_first_cell():
    df = pd.DataFrame({"age": [50.0] * 100, "age_at_menarche": ["twelve", "eleven", None, "ten"] * 25})
    with pytest.raises(SchemaError, match=r"age_at_menarche.*first: 'twelve'"):
        validate(df)


@pytest.mark.parametrize("missing", [None, np.nan])
@pytest.mark.parametrize("n", [10, 400])
def test_text_categorical_columns_read_as_their_text(n, missing):
    rng = np.random.default_rng(1)
    pool = np.array([*_MESSY_TEXT, missing], dtype=object)
    columns = ["race", "density", "brca", "nulliparous", "n_biopsies", "age_at_menarche"]
    text = pd.DataFrame({name: pool[rng.integers(0, len(pool), n)] for name in columns}, dtype=object)
    text.insert(0, "age", rng.choice([45.0, 50.0, 70.0], n))
    cats = text.astype({name: "category" for name in columns})
    a, b = validate(text), validate(cats)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.status.tolist() == b.status.tolist() and a.message.tolist() == b.message.tolist()
    assert set(a.status) - {"ok"}
