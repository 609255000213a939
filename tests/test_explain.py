"""riskmodel.explain: saliency maps on each view's DICOM grid, asymmetry, view contributions, faithfulness
measures, the CLI, and the synthetic generator's lesion truth (lesions.csv)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from riskmodel.explain import ExplainTarget, explain, pointing_game, write_explanations
from riskmodel.explain.faithfulness import deletion_auc, deletion_curve
from riskmodel.explain.maps import saliency, view_contributions
from riskmodel.explain.register import to_dicom_grid, to_model_frame
from riskmodel.imaging import assemble_exams, read_mammogram, scan_dicoms
from riskmodel.inference import ImageRiskPredictor, image_preprocessing
from riskmodel.nn import ImageRiskModel, tiny_config
from riskmodel.synthetic import lesion_mask, make_cohort, write_exams

SIZE = (96, 78)  # the files' grid; the model reads (64, 52), so registration must rescale


@pytest.fixture(scope="module")
def lesion_exams(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two synthetic exams with a mass (one per side when the draw allows), their exams table and lesions.csv."""
    folder = tmp_path_factory.mktemp("explain") / "exams"
    cohort = make_cohort(400, seed=1)
    cohort = cohort[(cohort["event"] == 1) & (cohort["time"] <= 2)].head(2)
    write_exams(cohort, folder, image_size=SIZE, seed=0)
    exams = assemble_exams(scan_dicoms(folder))
    lesions = pd.read_csv(folder / "lesions.csv")
    lesions["path"] = [str(folder / p) for p in lesions["path"]]
    return exams, lesions


@pytest.fixture(scope="module")
def predictor() -> ImageRiskPredictor:
    torch.manual_seed(0)
    return ImageRiskPredictor(ImageRiskModel(tiny_config()).eval(), image_preprocessing((64, 52)), device="cpu")


def test_maps_have_each_views_dicom_shape_and_are_deterministic(lesion_exams, predictor):
    exams, _ = lesion_exams
    first = explain(predictor, exams.head(1), years=5, steps=4)
    again = explain(predictor, exams.head(1), years=5, steps=4)
    [ex] = first
    assert ex.status == "ok" and set(ex.views) == {"L-CC", "L-MLO", "R-CC", "R-MLO"}
    for slot, view in ex.views.items():
        assert view.shape == SIZE == view.pixels.shape
        for method in ("gradcam", "ig"):
            assert view.maps[method].shape == SIZE and view.maps[method].dtype == np.float32
            assert (view.maps[method] >= 0).all() and view.maps[method].max() > 0
            np.testing.assert_array_equal(view.maps[method], again[0].views[slot].maps[method])
        assert view.asymmetry is not None and view.asymmetry.shape == SIZE
    assert np.isfinite(ex.risk) and np.isfinite(ex.asymmetry_score)
    assert ex.asymmetry_score == max(a["score"] for a in ex.asymmetry.values())


def _lesion_target(lesions: pd.DataFrame, exam: pd.Series, image_size: tuple[int, int]) -> ExplainTarget:
    """A linear 'model' whose risk depends only on the pixels of each view's mass (placed from lesions.csv)."""
    weights = torch.zeros(4, *image_size)
    for k, slot in enumerate(("L-CC", "L-MLO", "R-CC", "R-MLO")):
        for r in lesions[lesions["path"] == exam[slot]].itertuples():
            m = read_mammogram(r.path)
            disc = lesion_mask(m.shape, r.row, r.col, r.radius).astype(np.float32)
            weights[k] = torch.from_numpy(to_model_frame(disc, image_size, m.flipped))
    conv = torch.nn.Conv2d(1, 1, 1, bias=False)
    torch.nn.init.ones_(conv.weight)

    def risk(images, mask):
        flat = conv(images.reshape(-1, *images.shape[2:])).reshape(images.shape)[:, :, 0]
        score = (flat * weights * mask[:, :, None, None]).sum(dim=(1, 2, 3))
        return torch.sigmoid(score - 1.0)[:, None].expand(-1, 5)

    return ExplainTarget(risk=risk, layer=conv, image_size=image_size, voi="auto", n_years=5, device="cpu")


def test_maps_are_registered_onto_the_stored_grid_for_mirrored_and_unmirrored_files(lesion_exams):
    """Integrated gradients of a model that reads only the mass's pixels must peak on the mass in the
    file's own pixel grid, whether the reader mirrored the file (right breasts) or not."""
    exams, lesions = lesion_exams
    checked = set()
    for _, exam in exams.iterrows():
        [ex] = explain(_lesion_target(lesions, exam, (64, 52)), exams[exams["exam_id"] == exam["exam_id"]],
                       methods="ig", steps=4)
        for r in lesions[lesions["exam_id"] == exam["accession_number"]].itertuples():
            slot = f"{r.laterality}-{r.view}"
            view = ex.views[slot]
            disc = lesion_mask(view.shape, r.row, r.col, r.radius + 1.5)
            assert pointing_game([view.maps["ig"]], [disc]) == 1.0, slot
            checked.add(view.flipped)
    assert checked == {True, False}  # the fixture's masses: one left breast (as stored), one right (mirrored)


def test_registration_round_trip_keeps_orientation():
    grid = np.zeros((100, 80), np.float32)
    grid[10:20, 60:70] = 1.0  # near the last column of the stored image
    for flipped in (False, True):
        model = to_model_frame(grid, (64, 52), flipped)
        back = to_dicom_grid(model, grid.shape, flipped)
        assert back.shape == grid.shape
        r, c = np.unravel_index(np.argmax(back), back.shape)
        assert 10 <= r < 20 and 58 <= c < 72
        col = np.argmax(model.max(axis=0))
        assert (col < 26) if flipped else (col > 26)  # mirrored: chest wall side is column 0


def test_a_masked_view_contributes_nothing(lesion_exams, predictor):
    from riskmodel.explain.target import native_target

    exams, _ = lesion_exams
    target = native_target(predictor.model, predictor.preprocessing)
    images = torch.rand(1, 4, 1, 64, 52)
    mask = torch.tensor([[False, True, True, True]])
    blank = images.clone()
    blank[0, 0] = 0.0
    for method in ("gradcam", "ig"):
        maps = saliency(target, images, mask, 5, method, steps=4)
        assert not maps[0].any()  # nothing attributed to the masked slot, whatever its pixels hold
        np.testing.assert_allclose(maps, saliency(target, blank, mask, 5, method, steps=4), atol=1e-6)
    _, contrib = view_contributions(target, images, mask)
    assert (contrib[0] == 0).all() and np.isfinite(contrib[1:]).all() and (contrib[1:] != 0).any()
    # through the public API: an exam without its L-CC file has no L-CC view and the same risk as predict
    one = exams.head(1).copy()
    one["L-CC"] = None
    [ex] = explain(predictor, one, methods="gradcam")
    assert "L-CC" not in ex.views and ex.views["R-CC"].maps["gradcam"].shape == SIZE
    assert ex.risk == pytest.approx(float(predictor.encode(one).raw_risk[0, 4]), abs=1e-6)


def test_pointing_game_is_one_for_the_mask_and_the_area_fraction_for_noise():
    rng = np.random.default_rng(0)
    masks = []
    for _ in range(2000):
        m = np.zeros((20, 20), bool)
        r, c = rng.integers(2, 18, size=2)
        m[r - 2:r + 2, c - 2:c + 2] = True  # 16 of 400 pixels: 4 %
        masks.append(m)
    assert pointing_game([m.astype(float) for m in masks], masks) == 1.0
    noise = pointing_game([rng.random((20, 20)) for _ in masks], masks)
    assert noise == pytest.approx(0.04, abs=0.015)
    assert pointing_game([rng.random((20, 20)) for _ in masks], masks, margin=1.0) > noise  # dilation counts
    with pytest.raises(ValueError, match="non-empty mask"):
        pointing_game([np.ones((2, 2))], [np.zeros((2, 2), bool)])


def test_deletion_curve_falls_faster_for_the_right_map():
    weights = np.zeros((4, 8, 8), np.float32)
    weights[0, 2:4, 2:4] = 1.0

    def risk(batch, mask):
        return 0.1 + (batch * weights).sum(axis=(1, 2, 3))

    images = np.ones((4, 8, 8), np.float32)
    mask = np.array([True, True, False, False])
    good = deletion_curve(risk, images, mask, weights)
    rand = deletion_curve(risk, images, mask, np.zeros_like(weights), order="random", seed=1)
    assert good[0] == rand[0] == pytest.approx(4.1) and good[-1] == pytest.approx(0.1)
    assert deletion_auc(good) < deletion_auc(rand)


def test_lesions_csv_gives_each_mass_on_the_stored_grid(lesion_exams):
    _, lesions = lesion_exams
    assert list(lesions.columns) == ["exam_id", "id", "path", "laterality", "view", "row", "col", "sigma", "radius"]
    assert len(lesions) == 4 and (lesions.groupby("exam_id")["laterality"].nunique() == 1).all()
    for r in lesions.itertuples():
        m = read_mammogram(r.path)
        stored = m.pixels[:, ::-1] if m.flipped else m.pixels
        canonical_col = SIZE[1] - 1 - r.col if m.flipped else r.col
        assert 0 <= r.row < SIZE[0] and 0 <= canonical_col < 0.6 * SIZE[1]
        assert r.radius == pytest.approx(2 * r.sigma)
        assert stored.shape == SIZE
    # where the generator draws the mass: the same tissue rendered with and without it differs most there
    from riskmodel.synthetic.mammogram import lesion_geometry, render_view

    with_mass = render_view(96, 78, "CC", "b", 0.0, np.random.default_rng(3), lesion=(0.5, 0.4))
    without = render_view(96, 78, "CC", "b", 0.0, np.random.default_rng(3))
    row, col, _ = lesion_geometry(96, 78, (0.5, 0.4))
    peak = np.unravel_index(np.argmax(with_mass - without), with_mass.shape)
    assert abs(peak[0] - row) <= 1 and abs(peak[1] - col) <= 1


def test_cli_writes_overlays_maps_summary_and_secondary_captures(lesion_exams, predictor, tmp_path):
    import pydicom

    from riskmodel.cli import main

    exams, _ = lesion_exams
    bundle = predictor.save(tmp_path / "bundle")
    table = tmp_path / "exams.csv"
    exams.head(1).to_csv(table, index=False)
    assert main(["explain", "--bundle", str(bundle), "--exams", str(table), "--out", str(tmp_path / "out"),
                 "--years", "2", "--methods", "gradcam", "--dicom-sc", "-q"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    [entry] = summary["exams"]
    assert entry["status"] == "ok" and entry["year"] == 2 and set(entry["views"]) == {"L-CC", "L-MLO", "R-CC", "R-MLO"}
    folder = tmp_path / "out" / entry["folder"]
    assert np.load(folder / "R-MLO_gradcam.npy").shape == SIZE
    assert np.load(folder / "L-CC_asymmetry.npy").shape == SIZE
    from PIL import Image

    assert Image.open(folder / "L-MLO_gradcam.png").size == (SIZE[1], SIZE[0])
    sc = pydicom.dcmread(folder / "L-CC_gradcam_sc.dcm")
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and sc.pixel_array.shape == (*SIZE, 3)
    assert sc.StudyInstanceUID == pydicom.dcmread(exams.iloc[0]["L-CC"], stop_before_pixels=True).StudyInstanceUID
    from riskmodel.explain.output import overlays_for_report

    pngs = overlays_for_report(tmp_path / "out", entry["exam_id"])
    assert sorted(pngs) == ["L-CC", "L-MLO", "R-CC", "R-MLO"] and all(p.is_file() for p in pngs.values())
    assert overlays_for_report(tmp_path / "out", "no such exam") == {}
    assert main(["explain", "--bundle", str(bundle), "--exams", str(table), "--out", str(tmp_path / "o2"),
                 "--methods", "gradcam,shap"]) == 2
    assert main(["explain", "--bundle", str(bundle), "--exams", str(table), "--out", str(tmp_path / "o2"),
                 "--years", "9"]) == 2


def test_unreadable_exam_gets_a_status_not_a_crash(lesion_exams, predictor, tmp_path):
    exams, _ = lesion_exams
    bad = exams.head(1).copy()
    for slot in ("L-CC", "L-MLO", "R-CC", "R-MLO"):
        bad[slot] = str(tmp_path / "missing.dcm")
    both = pd.concat([bad, exams.head(1)], ignore_index=True)
    out = explain(predictor, both, methods="gradcam")
    assert [e.status for e in out] == ["no_views", "ok"] and "missing.dcm" in out[0].message
    entries = write_explanations(out, tmp_path / "o")
    assert [e["status"] for e in entries] == ["no_views", "ok"] and entries[0]["files"] == []


def test_the_mirai_model_is_explained_through_the_same_function(lesion_exams):
    from test_mirai_model import make_model

    from riskmodel.explain import mirai_target

    exams, _ = lesion_exams
    target = mirai_target(make_model(), (64, 52))
    [ex] = explain(target, exams.head(1), methods="gradcam,ig", steps=2)
    assert ex.status == "ok" and set(ex.views) == {"L-CC", "L-MLO", "R-CC", "R-MLO"}
    for view in ex.views.values():
        assert view.maps["gradcam"].shape == view.maps["ig"].shape == SIZE and view.maps["ig"].max() > 0
        assert np.isfinite(view.contribution)
    assert set(ex.asymmetry) == {"CC", "MLO"}
