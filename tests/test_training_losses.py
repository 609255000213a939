"""Targets, loss, sampler and metrics used by the trainer."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from riskmodel.evaluation import harrell_c_index, uno_c_index
from riskmodel.training import TensorExams, balance_weight, epoch_indices, masked_bce, survival_targets


def test_survival_targets_follow_the_censoring_rule():
    time = np.array([0.5, 2.5, 2.5, 7.0, 3.0, 1.0])
    event = np.array([1, 1, 0, 0, 2, 0])
    y, w = survival_targets(time, event, 5)
    np.testing.assert_array_equal(y[0], [1, 1, 1, 1, 1])  # cancer in year 1: positive for every horizon
    np.testing.assert_array_equal(w[0], [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(y[1], [0, 0, 1, 1, 1])  # cancer at 2.5: negative at 1 and 2 (followed)
    np.testing.assert_array_equal(w[1], [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(w[2], [1, 1, 0, 0, 0])  # censored at 2.5: years 3-5 unknown
    np.testing.assert_array_equal(w[3], [1, 1, 1, 1, 1]) and np.testing.assert_array_equal(y[3], [0] * 5)
    np.testing.assert_array_equal(w[4], [1, 1, 1, 0, 0])  # died of other causes at 3.0
    np.testing.assert_array_equal(w[5], [1, 0, 0, 0, 0])  # censored exactly at 1 year


@pytest.mark.parametrize(("time", "event"), [([1.0, np.nan], [0, 0]), ([-1.0], [0]), ([1.0], [3]), ([1.0], [0, 1])])
def test_survival_targets_reject_bad_input(time, event):
    with pytest.raises(ValueError):
        survival_targets(np.array(time), np.array(event))


def test_masked_bce_ignores_unknown_years_and_uses_a_constant_denominator():
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    manual = sum(float(torch.nn.functional.binary_cross_entropy_with_logits(logits[i, j], y[i, j]))
                 for i, j in [(0, 0), (1, 0), (1, 1)]) / 4
    assert float(masked_bce(logits, y, w)) == pytest.approx(manual)
    # Halves of a batch, averaged, equal the whole (what DDP's gradient averaging relies on).
    halves = (masked_bce(logits[:1], y[:1], w[:1]) + masked_bce(logits[1:], y[1:], w[1:])) / 2
    assert float(halves) == pytest.approx(float(masked_bce(logits, y, w)))


def test_balance_weight():
    y = np.array([[1, 0], [0, 0], [0, 0], [0, 1]], dtype=float)
    w = np.ones_like(y)
    np.testing.assert_allclose(balance_weight(y, w), [3.0, 3.0])


@pytest.mark.parametrize(("n", "world", "b"), [(24, 2, 3), (25, 2, 3), (30, 3, 2)])
def test_epoch_indices_make_n_processes_see_what_one_process_sees(n, world, b):
    single = epoch_indices(n, epoch=2, seed=5, rank=0, world_size=1)[: (n // world) * world]
    ranks = [epoch_indices(n, epoch=2, seed=5, rank=r, world_size=world) for r in range(world)]
    steps = len(ranks[0]) // b
    for step in range(steps):
        union = sorted(itertools.chain.from_iterable(r[step * b:(step + 1) * b] for r in ranks))
        assert union == sorted(single[step * b * world:(step + 1) * b * world])
    assert epoch_indices(n, 1, 5) != epoch_indices(n, 2, 5)  # reshuffled every epoch
    assert epoch_indices(n, 1, 5) == epoch_indices(n, 1, 5)


def test_tensor_exams_items():
    labels = pd.DataFrame({"time": [1.0, 6.0], "event": [1, 0], "density": ["c", None], "age": [50.0, np.nan]})
    ds = TensorExams(torch.ones(2, 4), labels, images=torch.zeros(2, 4, 1, 8, 8))
    item = ds[1]
    assert item["images"].shape == (4, 1, 8, 8) and item["mask"].dtype == torch.bool
    assert item["density"] == -1 and torch.isnan(item["age"]) and ds[0]["density"] == 2
    assert item["weights"].tolist() == [1.0] * 5
    with pytest.raises(ValueError, match="exactly one"):
        TensorExams(torch.ones(2, 4), labels)


def _brute_harrell(time, event, risk):
    num = den = 0.0
    for i, j in itertools.permutations(range(len(time)), 2):
        if event[i] == 1 and time[i] < time[j]:
            den += 1
            num += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return num / den


def test_harrell_matches_brute_force():
    rng = np.random.default_rng(0)
    time = rng.uniform(0, 5, 60)
    event = rng.choice([0, 1, 2], 60, p=[0.5, 0.3, 0.2])
    risk = rng.normal(size=60) - 0.3 * time
    assert harrell_c_index(time, event, risk) == pytest.approx(_brute_harrell(time, event, risk))


def test_uno_perfect_and_random():
    rng = np.random.default_rng(1)
    n = 2000
    hazard = np.exp(rng.normal(size=n))
    t_event = rng.exponential(10 / hazard)
    cens = rng.uniform(0, 8, n)
    time, event = np.minimum(t_event, cens), (t_event <= cens).astype(int)
    c_true = uno_c_index(time, event, time, event, hazard, tau=5)
    c_noise = uno_c_index(time, event, time, event, rng.normal(size=n), tau=5)
    assert c_true > 0.65 and abs(c_noise - 0.5) < 0.05
    with pytest.raises(ValueError, match="no breast-cancer events"):
        uno_c_index(time, event, time[:3], np.zeros(3, int), hazard[:3])
