"""`riskmodel recommend`: files in, one row per input row out, FHIR and reports, exit codes."""

import json
from pathlib import Path

import pandas as pd
import pytest

from riskmodel import cli

EXAMPLE = Path(__file__).parents[1] / "examples" / "example_cohort.csv"


@pytest.fixture()
def risks(tmp_path) -> Path:
    out = tmp_path / "risks.csv"
    assert cli.main(["predict", str(EXAMPLE), "-o", str(out), "-q"]) == 0
    return out


def test_recommend_with_cohort_fhir_and_reports(risks, tmp_path, capsys):
    out = tmp_path / "rec.csv"
    code = cli.main(["recommend", str(risks), "--cohort", str(EXAMPLE), "--policy", "mypebs", "-o", str(out),
                     "--fhir", str(tmp_path / "ra.ndjson"), "--report", str(tmp_path / "pages"),
                     "--date", "2026-11-21"])
    assert code == 0
    got = pd.read_csv(out)
    cohort = pd.read_csv(EXAMPLE)
    assert got["id"].tolist() == cohort["id"].tolist()
    assert list(got.columns[:6]) == ["id", "risk", "status", "message", "model", "horizon"]
    assert {"category", "interval_months", "modality", "supplemental", "chemoprevention_discussion", "rationale",
            "policy", "policy_version", "recommendation_status", "recommendation_message"} <= set(got.columns)
    w002 = got.set_index("id").loc["W002"]
    assert (w002["category"], w002["interval_months"], w002["supplemental"]) == ("very_high", 12.0, "mri")
    lines = (tmp_path / "ra.ndjson").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 20 and json.loads(lines[0])["resourceType"] == "RiskAssessment"
    assert len([p for p in (tmp_path / "pages").glob("*.html") if p.name != "index.html"]) == 20
    index = (tmp_path / "pages" / "index.html").read_text(encoding="utf-8")  # the day's list links every page
    assert index.count('<a href="W0') == 20
    err = capsys.readouterr().err
    assert "applied mypebs 2019.1 to 20 rows" in err and "FHIR ->" in err and "20 report files + index.html" in err


def test_recommend_from_keep_input(tmp_path):
    scored = tmp_path / "scored.parquet"
    assert cli.main(["predict", str(EXAMPLE), "-o", str(scored), "--keep-input", "-q"]) == 0
    out = tmp_path / "rec.parquet"
    assert cli.main(["recommend", str(scored), "--policy", "uspstf2024", "-o", str(out), "-q"]) == 0
    got = pd.read_parquet(out)
    assert len(got) == 20 and (got.loc[got["recommendation_status"] == "ok", "interval_months"] == 24).all()


def test_recommend_errors(risks, tmp_path, capsys):
    assert cli.main(["recommend", str(risks), "--policy", "mypebs"]) == 2
    assert "no age column; pass --cohort COHORT" in capsys.readouterr().err
    short = tmp_path / "short.csv"
    pd.read_csv(EXAMPLE).iloc[:5].to_csv(short, index=False)
    assert cli.main(["recommend", str(risks), "--cohort", str(short)]) == 2
    assert "--cohort" in capsys.readouterr().err
    swapped = tmp_path / "swapped.csv"
    c = pd.read_csv(EXAMPLE)
    c.iloc[::-1].to_csv(swapped, index=False)
    assert cli.main(["recommend", str(risks), "--cohort", str(swapped)]) == 2
    assert "row 1 has id 'W020'" in capsys.readouterr().err
    assert cli.main(["recommend", str(risks), "--cohort", str(EXAMPLE), "--policy", "nice2013"]) == 2
    assert "riskmodel: error: policy nice2013: no shipped policy of that name" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('schema = 1\nid = "x"\ntitle = "x"\nversion = "1"\nmeasure = "five_year"\nages = "[40, 75)"\n',
                   encoding="utf-8")
    assert cli.main(["recommend", str(risks), "--cohort", str(EXAMPLE), "--policy", str(bad)]) == 2
    assert "missing [source]: every policy must cite its source" in capsys.readouterr().err
    assert cli.main(["recommend", str(risks), "--cohort", str(EXAMPLE), "--fhir", str(tmp_path / "x.xml")]) == 2
    assert "use .ndjson" in capsys.readouterr().err
    assert cli.main(["recommend", str(risks), "--cohort", str(EXAMPLE), "--pdf", "-o", str(tmp_path / "o.csv")]) == 2
    assert "--pdf needs --report DIR" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()


def test_recommend_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["recommend", "--help"])
    text = capsys.readouterr().out
    for option in ("--policy", "--cohort", "--reference", "--fhir", "--report", "--pdf", "--date"):
        assert option in text


def test_predict_recommend_matches_two_steps(risks, tmp_path):
    one = tmp_path / "one.csv"
    assert cli.main(["predict", str(EXAMPLE), "-o", str(one), "-q", "--recommend", "mypebs"]) == 0
    two = tmp_path / "two.csv"
    assert cli.main(["recommend", str(risks), "--cohort", str(EXAMPLE), "--policy", "mypebs", "-o", str(two),
                     "-q"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(one), pd.read_csv(two))


def test_predict_recommend_wisdom_is_not_chunked(tmp_path):
    # WISDOM compares each woman with the others scored ("top 2.5% for age"): chunking must not change it.
    from riskmodel.synthetic import make_cohort

    cohort = make_cohort(3000, seed=8).drop(columns=["time", "event"])
    cohort.to_csv(tmp_path / "cohort.csv", index=False)
    whole, chunked = tmp_path / "whole.csv", tmp_path / "chunked.csv"
    assert cli.main(["predict", str(tmp_path / "cohort.csv"), "-o", str(whole), "-q", "--recommend", "wisdom"]) == 0
    assert cli.main(["predict", str(tmp_path / "cohort.csv"), "-o", str(chunked), "-q", "--recommend", "wisdom",
                     "--chunk-rows", "500"]) == 0
    got = pd.read_csv(chunked)
    pd.testing.assert_frame_equal(pd.read_csv(whole), got)
    assert (got["category"] == "elevated").sum() > 0  # the age-percentile rule was applied


def test_predict_recommend_errors(tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert cli.main(["predict", str(EXAMPLE), "-o", str(out), "--recommend", str(tmp_path / "none.toml")]) == 2
    assert "none.toml" in capsys.readouterr().err and not out.exists()
    assert cli.main(["predict", str(EXAMPLE), "-o", str(out), "--recommend", "uspstf2024", "--layout", "bcra"]) == 2
    assert "canonical layout" in capsys.readouterr().err and not out.exists()


def _outputs(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in ("risks.csv",))


def _recommend(risks: Path, tmp_path: Path, *extra: str) -> int:
    return cli.main(["recommend", str(risks), "--cohort", str(EXAMPLE), "--policy", "mypebs", "-o",
                     str(tmp_path / "rec.csv"), "--fhir", str(tmp_path / "ra.ndjson"), "--report",
                     str(tmp_path / "pages"), "-q", *extra])


@pytest.mark.parametrize("date", ["2026-13-45", "2026-02-30", "today"])
def test_recommend_refuses_an_impossible_date_before_writing_anything(risks, tmp_path, capsys, date):
    assert _recommend(risks, tmp_path, "--date", date) == 2
    assert f"--date: date {date!r}" in capsys.readouterr().err
    assert _outputs(tmp_path) == []


def test_recommend_failure_while_writing_pages_leaves_nothing_behind(risks, tmp_path, monkeypatch, capsys):
    from riskmodel.screening import report

    original, calls = report._write_pdf, []

    def truncated(row, curve, path, **kwargs):  # the third PDF fails half-written
        calls.append(path)
        if len(calls) == 3:
            path.write_bytes(b"%PDF-1.4 trunc")
            raise OSError(f"{path}: No space left on device")
        return original(row, curve, path, **kwargs)

    monkeypatch.setattr(report, "_write_pdf", truncated)
    assert _recommend(risks, tmp_path, "--pdf", "--date", "2026-11-21") == 2
    assert "No space left on device" in capsys.readouterr().err
    assert _outputs(tmp_path) == []  # no -o, no FHIR file, no report folder, no .partial
    monkeypatch.setattr(report, "_write_pdf", original)
    assert _recommend(risks, tmp_path, "--date", "2026-11-21") == 0
    assert _outputs(tmp_path) == ["pages", "ra.ndjson", "rec.csv"]


def test_recommend_refuses_an_output_that_is_an_input_or_a_folder(risks, tmp_path, capsys):
    before = risks.read_bytes()
    assert cli.main(["recommend", str(risks), "--cohort", str(EXAMPLE), "-o", str(risks)]) == 2
    assert "it would be overwritten" in capsys.readouterr().err and risks.read_bytes() == before
    cohort = tmp_path / "sub" / "cohort.csv"
    cohort.parent.mkdir()
    cohort.write_bytes(EXAMPLE.read_bytes())
    assert cli.main(["recommend", str(risks), "--cohort", str(cohort), "-o", str(tmp_path / "sub" / ".." / "sub" /
                                                                               "cohort.csv")]) == 2
    assert "it would be overwritten" in capsys.readouterr().err and cohort.read_bytes() == EXAMPLE.read_bytes()
    assert cli.main(["recommend", str(risks), "--cohort", str(EXAMPLE), "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert cli.main(["recommend", str(risks), "--cohort", str(EXAMPLE), "--report", str(risks)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err and risks.read_bytes() == before
    assert _outputs(tmp_path) == ["sub"] and _outputs(cohort.parent) == ["cohort.csv"]


def test_recommend_pdf_with_math_like_ids(tmp_path):
    cohort = pd.read_csv(EXAMPLE).iloc[:2].assign(id=[r"$\nosuchcmd{$", r"$\frac{1}{0}$"])
    cohort.to_csv(tmp_path / "cohort.csv", index=False)
    assert cli.main(["predict", str(tmp_path / "cohort.csv"), "-o", str(tmp_path / "risks.csv"), "-q"]) == 0
    assert cli.main(["recommend", str(tmp_path / "risks.csv"), "--cohort", str(tmp_path / "cohort.csv"), "--report",
                     str(tmp_path / "pages"), "--pdf", "--date", "2026-11-21", "-q"]) == 0
    pdfs = sorted((tmp_path / "pages").glob("*.pdf"))  # two women, and reports.pdf (all of them in one file)
    assert [p.name for p in pdfs][-1] == "reports.pdf"
    assert len(pdfs) == 3 and all(p.read_bytes().startswith(b"%PDF") for p in pdfs)


def test_recommend_fhir_resources_validate(risks, tmp_path):
    R4B = pytest.importorskip("fhir.resources.R4B.riskassessment")
    assert _recommend(risks, tmp_path, "--date", "2026-11-21") == 0
    for line in (tmp_path / "ra.ndjson").read_text(encoding="utf-8").splitlines():
        R4B.RiskAssessment.model_validate(json.loads(line))
