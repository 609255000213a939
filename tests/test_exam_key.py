"""``exam_id`` has one meaning everywhere: the key that joins a woman (cohort) to her exam (exams table,
embeddings, hybrid models). Scan → embed → fit-hybrid → predict on ids with leading zeros; old exams
tables; blank and duplicated keys."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import riskmodel
from riskmodel import cli
from riskmodel.fusion import CoxHead, HybridModel, load_hybrid
from riskmodel.imaging import assemble_exams, upgrade_exams
from riskmodel.imaging.exams import ExamsFormatWarning
from riskmodel.inference import ImageRiskPredictor, read_exams, save_image_model
from riskmodel.nn import ImageRiskModel, tiny_config
from riskmodel.synthetic import make_cohort, write_exams

N = 16
VIEWS = ["L-CC", "L-MLO", "R-CC", "R-MLO"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A cohort whose exam ids have leading zeros, its DICOMs (AccessionNumber = exam_id), scanned by the CLI,
    and an untrained tiny image bundle."""
    root = tmp_path_factory.mktemp("examkey")
    cohort = make_cohort(N, seed=5)
    cohort["exam_id"] = [f"{i + 1:07d}" for i in range(N)]  # "0000001" …
    cases = np.arange(0, N, 3)
    cohort.loc[cases, "event"] = 1
    cohort.loc[cases, "time"] = np.linspace(0.5, 4.5, cases.size)
    write_exams(cohort, root / "dicom", image_size=(64, 52), seed=1)
    cohort.to_csv(root / "cohort.csv", index=False)
    assert cli.main(["scan", str(root / "dicom"), "-o", str(root / "manifest.csv"), "--exams",
                     str(root / "exams.csv"), "-q"]) == 0
    torch.manual_seed(0)
    image = ImageRiskPredictor(ImageRiskModel(tiny_config()), {"image_size": [64, 52], "view_order": VIEWS},
                               device="cpu")
    save_image_model(root / "bundle", image.model, preprocessing=image.preprocessing)
    HybridModel(image, head=CoxHead()).fit(cohort, root / "exams.csv").save(root / "hybrid")
    return {"root": root, "cohort": cohort, "image": image}


def women(cohort: pd.DataFrame) -> pd.DataFrame:
    """What a user scores: the canonical columns (no outcome, no truth)."""
    return cohort.drop(columns=[c for c in cohort.columns if c.startswith("true_") or c in ("time", "event",
                                                                                             "image_factor")])


def old_format(exams: pd.DataFrame) -> pd.DataFrame:
    """An exams table as riskmodel wrote it before: exam_id = '<patient_id>/<study_uid>', no study_key."""
    return exams.drop(columns=["study_key"]).assign(exam_id=exams["patient_id"] + "/" + exams["study_uid"])


def test_scan_embed_fit_hybrid_predict_join_on_exam_id_with_leading_zeros(study, tmp_path):
    root, cohort = study["root"], study["cohort"]
    exams = pd.read_csv(root / "exams.csv", dtype=str)
    assert sorted(exams["exam_id"]) == sorted(cohort["exam_id"])  # the scan's exam_id IS the cohort's key
    assert (exams["exam_id"] == exams["accession_number"]).all()
    assert (exams["study_key"] == exams["patient_id"] + "/" + exams["study_uid"]).all()
    assert cli.main(["embed", "--bundle", str(root / "bundle"), "--exams", str(root / "exams.csv"),
                     "-o", str(tmp_path / "emb.csv"), "--device", "cpu", "-q"]) == 0
    emb = pd.read_csv(tmp_path / "emb.csv", dtype={"exam_id": str})
    joined = pd.read_csv(root / "cohort.csv", dtype={"exam_id": str}).merge(emb, on="exam_id", validate="1:1")
    assert len(joined) == N and (joined["status"] == "ok").all()
    assert cli.main(["fit-hybrid", "--cohort", str(root / "cohort.csv"), "--exams", str(root / "exams.csv"),
                     "--image-bundle", str(root / "bundle"), "--out", str(tmp_path / "hybrid"), "--head", "cox",
                     "--device", "cpu", "-q"]) == 0
    model = load_hybrid(tmp_path / "hybrid", device="cpu")
    assert (model.key_, model.exam_key_, model.fit_summary_["n_used"]) == ("exam_id", "exam_id", N)
    women(cohort).to_csv(tmp_path / "women.csv", index=False)
    assert cli.main(["predict", str(tmp_path / "women.csv"), "--bundle", str(tmp_path / "hybrid"), "--exams",
                     str(root / "exams.csv"), "--device", "cpu", "-o", str(tmp_path / "risk.csv"), "--keep-input",
                     "-q"]) == 0
    risk = pd.read_csv(tmp_path / "risk.csv", dtype={"exam_id": str})
    assert risk["exam_id"].tolist() == cohort["exam_id"].tolist()
    assert (risk["status"] == "ok").all(), risk["message"].tolist()


def test_exam_id_is_the_accession_else_the_study_uid_and_blank_or_shared_keys_are_flagged():
    base = {"status": "ok", "patient_id": "P1", "study_date": "20240101", "presentation_intent": "",
            "acquisition_datetime": "", "instance_number": None, "view_modifiers": ""}
    rows = []
    for study_uid, accession in (("1.1", "007"), ("1.2", ""), ("", ""), ("1.4", "X9"), ("1.5", "X9")):
        rows += [dict(base, path=f"{study_uid}{s}.dcm", laterality=s[0], view=s[2:], study_uid=study_uid,
                      accession_number=accession) for s in VIEWS]
    exams = assemble_exams(pd.DataFrame(rows)).set_index("study_key")
    assert exams["exam_id"].to_dict() == {"P1/": "", "P1/1.1": "007", "P1/1.2": "1.2", "P1/1.4": "X9", "P1/1.5": "X9"}
    assert exams["flags"].to_dict() == {"P1/": "no_study_uid;no_exam_id", "P1/1.1": "",
                                        "P1/1.2": "exam_id_from_study_uid", "P1/1.4": "duplicate_exam_id",
                                        "P1/1.5": "duplicate_exam_id"}


def test_a_key_several_exams_share_matches_none_of_them(study):
    """Two exams rows with one exam_id (a study sent twice): the woman gets no_exam and why, never a guess."""
    root, cohort = study["root"], study["cohort"]
    exams = read_exams(root / "exams.csv")
    first = cohort["exam_id"].iloc[0]
    twin = exams[exams["exam_id"] == first].assign(study_key="P/other", **{"L-CC": np.nan, "n_views": 3})
    doubled = pd.concat([exams, twin], ignore_index=True)
    out = riskmodel.predict_risk(women(cohort).head(3), model=root / "bundle", exams=doubled, device="cpu")
    assert out["status"].tolist() == ["no_exam", "ok", "ok"]
    assert out.loc[0, "message"] == (f"exam_id='{first}': 2 exams in the exams table have that exam_id "
                                     f"({exams.loc[exams['exam_id'] == first, 'study_key'].iloc[0]}, P/other), so it "
                                     "names no single exam; give each exam its own exam_id")


def test_an_old_exams_table_is_converted_with_a_warning_and_joins_the_same(study, tmp_path):
    root, cohort = study["root"], study["cohort"]
    new = read_exams(root / "exams.csv")
    old = old_format(new)
    old.to_csv(tmp_path / "old.csv", index=False)
    with pytest.warns(ExamsFormatWarning, match="old.csv: written by an older riskmodel.*Re-scan"):
        got = read_exams(tmp_path / "old.csv")
    pd.testing.assert_frame_equal(got[new.columns], new)  # as a new scan writes it (flags included)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert upgrade_exams(new) is new  # a current table is left alone, without a warning
    ours = women(cohort).head(4)
    with pytest.warns(ExamsFormatWarning):
        from_old = riskmodel.predict_risk(ours, model=root / "bundle", exams=tmp_path / "old.csv", device="cpu")
    from_new = riskmodel.predict_risk(ours, model=root / "bundle", exams=root / "exams.csv", device="cpu")
    pd.testing.assert_frame_equal(from_old, from_new)
    assert (from_new["status"] == "ok").all()
    with pytest.warns(ExamsFormatWarning):
        assert cli.main(["embed", "--bundle", str(root / "bundle"), "--exams", str(tmp_path / "old.csv"),
                         "-o", str(tmp_path / "emb.csv"), "--device", "cpu", "-q"]) == 0
    emb = pd.read_csv(tmp_path / "emb.csv", dtype={"exam_id": str})
    assert sorted(emb["exam_id"]) == sorted(cohort["exam_id"])  # joins to the cohort, as from a new table


def test_a_hybrid_saved_with_the_old_exam_key_loads_and_scores_the_same(study, tmp_path):
    """Hybrid models saved before matched exams_table.accession_number; they keep that key and their scores."""
    root, cohort, image = study["root"], study["cohort"], study["image"]
    exams = read_exams(root / "exams.csv")
    before = HybridModel(image, head=CoxHead()).fit(cohort, exams, exam_key="accession_number")
    expected = before.predict(women(cohort), exams)
    before.save(tmp_path / "old_hybrid")
    loaded = load_hybrid(tmp_path / "old_hybrid", device="cpu")
    assert loaded.exam_key_ == "accession_number"
    pd.testing.assert_frame_equal(loaded.predict(women(cohort), exams), expected)
    with pytest.warns(ExamsFormatWarning):
        pd.testing.assert_frame_equal(loaded.predict(women(cohort), old_format(exams)), expected)
    assert (expected["status"] == "ok").all()


def test_predict_reads_view_paths_relative_to_the_exams_table_and_fails_when_no_view_is_readable(study, tmp_path,
                                                                                                 monkeypatch, capsys):
    root, cohort = study["root"], study["cohort"]
    exams = read_exams(root / "exams.csv")
    rel = exams.copy()
    for v in VIEWS:
        rel[v] = [str(p.relative_to(root)) for p in map(Path, exams[v])]
    rel.to_csv(root / "relative.csv", index=False)
    women(cohort).head(2).to_csv(tmp_path / "women.csv", index=False)
    monkeypatch.chdir(tmp_path)  # neither the table's folder nor the images'
    assert cli.main(["predict", "women.csv", "--bundle", str(root / "hybrid"), "--exams", str(root / "relative.csv"),
                     "--device", "cpu", "-o", "risk.csv", "-q"]) == 0
    assert (pd.read_csv("risk.csv")["status"] == "ok").all()
    broken = exams.assign(**{v: str(tmp_path / "gone.dcm") for v in VIEWS})
    broken.to_csv(tmp_path / "broken.csv", index=False)
    capsys.readouterr()
    assert cli.main(["predict", "women.csv", "--bundle", str(root / "hybrid"), "--exams", "broken.csv",
                     "--device", "cpu", "-o", "none.csv", "-q"]) == 1
    assert "no woman of women.csv has a usable exam" in capsys.readouterr().err
    assert pd.read_csv("none.csv")["message"].str.contains("no readable view").all()
