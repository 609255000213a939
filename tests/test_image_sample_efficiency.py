"""The sample-efficiency grid's pieces (``benchmarks/image_sample_efficiency.py``): nested training sets,
the weighted C-index of its case-control test samples, and the per-cell summary over seeds."""

import importlib
from pathlib import Path

import numpy as np
import pytest

from riskmodel.evaluation import harrell_c_index
from riskmodel.synthetic import make_cohort

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ise(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module("image_sample_efficiency")


@pytest.fixture(scope="module")
def women():
    return make_cohort(30_000, seed=4, image_hr_per_sd=3.0)


def test_training_sets_are_nested_and_sized(ise, women):
    from riskmodel.benchmarking.suite import enriched

    train = enriched(women, 120, 2, np.random.default_rng(0))
    sets = [ise.nested(train, k, 2) for k in (30, 60, 120)]
    for k, s in zip((30, 60, 120), sets, strict=True):
        assert ise.is_case(s).sum() == k and (~ise.is_case(s)).sum() == 2 * k
        assert list(s.index) == [i for i in train.index if i in set(s.index)]  # the set's own order
    assert set(sets[0].index) < set(sets[1].index) < set(sets[2].index)
    with pytest.raises(ValueError, match="--cancers 500: the enriched training set has only 120 cases"):
        ise.nested(train, 500, 2)


def test_weighted_c_index_is_harrells_and_undoes_case_control_sampling(ise, women):
    score = women["true_risk_5y"].to_numpy()
    full = women.assign(weight=1.0)
    expected = harrell_c_index(women["time"], women["event"], score, tau=5.0)
    assert ise.c5(full, score) == pytest.approx(expected, abs=1e-4)
    sample = ise.weighted_sample(women, 3, np.random.default_rng(1))
    case = ise.is_case(sample)
    assert case.sum() == ise.is_case(women).sum() and (~case).sum() == 3 * case.sum()
    assert sample.loc[case, "weight"].eq(1).all()
    assert sample.loc[~case, "weight"].iloc[0] == pytest.approx((~ise.is_case(women)).sum() / (3 * case.sum()))
    # Weighted, the sample's C estimates the unselected women's; unweighted, case-case pairs count too much.
    c_sample = ise.c5(sample, sample["true_risk_5y"].to_numpy())
    assert abs(c_sample - expected) < 0.02
    with pytest.raises(ValueError, match="no cancer within 5 years"):
        ise.c5(full[~ise.is_case(full)], score[~ise.is_case(full)])


def test_summary_is_mean_and_spread_over_seeds(ise):
    truth = {f"{s}/3": {"truth_image_visible": 0.8, "truth_full": 0.85, "factors_cox": 0.7} for s in (0, 1)}
    results = [{"recipe": "quick", "seed": s, "effect": 3.0, "cancers": 150, "train_seconds": 10.0 + s,
                "c_index_5y": {"image_only": c, "hybrid": c + 0.05}} for s, c in ((0, 0.6), (1, 0.7))]
    (cell,) = ise.summarise(results, truth)
    assert cell["seeds"] == [0, 1] and cell["cancers"] == 150
    assert cell["image_only"]["mean"] == pytest.approx(0.65)
    assert cell["image_only"]["sd"] == pytest.approx(np.std([0.6, 0.7], ddof=1), abs=1e-4)
    assert cell["image_gap_to_visible"]["mean"] == pytest.approx(0.15)
    assert cell["hybrid_minus_factors"]["min"] == pytest.approx(-0.05)
    assert cell["train_seconds"]["max"] == 11.0
    assert "image_only_other_selection" not in cell  # cells recorded before both rules were scored
    for r, other in zip(results, (0.55, 0.65), strict=True):
        r["c_index_5y_best_epoch"] = {"image_only": other, "hybrid": other}
    (cell,) = ise.summarise(results, truth)
    assert cell["image_only_other_selection"]["mean"] == pytest.approx(0.6)
    assert ise.markdown_table([cell]).splitlines()[-1].endswith("| 0.600 ± 0.071 |")


def test_merge_unions_cells_of_side_by_side_runs_and_refuses_disagreements(ise):
    def report(cells, settings=None, truth=0.8):
        return {"command": f"run {cells}", "settings": settings or {"epochs": 8},
                "truth": {f"{s}/3": {"truth_image_visible": truth} for _, s, _ in cells},
                "cohorts": {f"{s}/3": {"test_exams": 10} for _, s, _ in cells}, "recipes": {r: {} for r, _, _ in cells},
                "results": [{"recipe": r, "seed": s, "effect": 3.0, "cancers": 300, "c_index_5y": {"image_only": c}}
                            for r, s, c in cells]}

    a, b = report([("quick", 0, 0.7)]), report([("quick", 0, 0.7), ("e16", 1, 0.75)])
    merged = ise.merge([a, b], ["a.json", "b.json"])
    assert [(r["recipe"], r["seed"]) for r in merged["results"]] == [("quick", 0), ("e16", 1)]
    assert set(merged["truth"]) == {"0/3", "1/3"} and set(merged["recipes"]) == {"quick", "e16"}
    assert merged["commands"] == [a["command"], b["command"]]
    assert a["results"] == [{"recipe": "quick", "seed": 0, "effect": 3.0, "cancers": 300,
                             "c_index_5y": {"image_only": 0.7}}]  # inputs untouched
    with pytest.raises(ValueError, match=r"b\.json was written with other settings than a\.json"):
        ise.merge([a, report([("e16", 1, 0.75)], settings={"epochs": 9})], ["a.json", "b.json"])
    with pytest.raises(ValueError, match=r"b\.json has another result for cell \('quick', 0, 3.0, 300\)"):
        ise.merge([a, report([("quick", 0, 0.71)])], ["a.json", "b.json"])
    with pytest.raises(ValueError, match=r"b\.json has another truth for cohort 0/3"):
        ise.merge([a, report([("e16", 0, 0.71)], truth=0.9)], ["a.json", "b.json"])


def test_recipes_set_the_network_and_the_training_loop(ise):
    from riskmodel.benchmarking.suite import SUITES

    conf = SUITES["quick"]
    mconf, tconf = ise.recipe_configs("quick", conf, 8, 3)
    assert (tconf.epochs, tconf.select, tconf.seed, mconf.stem_stride, mconf.pool) == (8, "best", 3, 2, "avg")
    mconf, tconf = ise.recipe_configs("last16_stem1", conf, 8, 0)
    assert (tconf.epochs, tconf.select, mconf.stem_stride, mconf.pool) == (16, "last", 1, "avg")
    mconf, tconf = ise.recipe_configs("last16_tissue", conf, 8, 0)
    assert (mconf.stem_stride, mconf.pool, mconf.widths) == (2, "tissue", tuple(conf.model["widths"]))
    assert ise.recipe_configs("last16_stem1", conf, 8, 0)[0].stem_stride == 1  # the recipe table is not consumed
