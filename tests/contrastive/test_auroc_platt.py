"""AUROC and Platt scaling come from scikit-learn; these pin that they are the statistics the
checkpoints store (Mann-Whitney AUROC with ties one half; logistic fit with a tiny L2 on the slope)."""
import math

import numpy as np
import pytest

from contrastive.evaluate import _platt
from contrastive.train import auroc


def test_auroc_is_the_pairwise_probability_with_ties_half():
    rng = np.random.default_rng(0)
    s = np.round(rng.random(60), 1)          # many ties
    y = rng.random(60) < 0.4
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]]
    assert auroc(s, y) == pytest.approx(np.mean(pairs))
    assert math.isnan(auroc([0.1, 0.2], [1, 1])) and math.isnan(auroc([0.1, 0.2], [0, 0]))


def test_platt_is_the_penalised_maximum_likelihood_fit():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(2.0 * z - 1.0)))).astype(float)
    a, b = _platt(z, y)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(-1.0, abs=0.1)
    p = 1 / (1 + np.exp(-(a * z + b)))
    # stationary point of sum(log-loss) + 0.0005 a^2 (no penalty on b)
    assert abs(np.sum((p - y) * z) + 1e-3 * a) < 1e-3 * z.size ** 0.5 and abs(np.sum(p - y)) < 1e-3 * z.size ** 0.5
    a_sep, _ = _platt(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([0, 0, 1, 1]))
    assert math.isfinite(a_sep) and a_sep > 0   # separable data: the L2 keeps it finite
    with pytest.raises(ValueError, match="both present and absent"):
        _platt(np.array([0.1, 0.2]), np.array([1, 1]))
