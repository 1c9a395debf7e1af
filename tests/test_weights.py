import numpy as np
import pytest

from ferx.training.class_weights import class_weights

COUNTS = [100, 10, 50]


def test_balanced_is_inverse_frequency_normalised_to_mean_one():
    # 1/n = 0.01, 0.1, 0.02 (sum 0.13); times 3 / 0.13
    np.testing.assert_allclose(
        class_weights(COUNTS, "balanced"), [0.230769, 2.307692, 0.461538], rtol=1e-5
    )


def test_effective_number_of_samples_by_hand():
    # (1 - 0.9) / (1 - 0.9^n): n=100 -> 0.1000027, n=10 -> 0.1535338, n=50 -> 0.1005181;
    # sum 0.3540546; times 3 / sum
    np.testing.assert_allclose(
        class_weights(COUNTS, "effective", beta=0.9), [0.847349, 1.300935, 0.851716], rtol=1e-5
    )


def test_effective_limits_none_and_balanced():
    np.testing.assert_allclose(class_weights(COUNTS, "effective", beta=0.0), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(
        class_weights(COUNTS, "effective", beta=0.999999),
        class_weights(COUNTS, "balanced"),
        rtol=1e-3,
    )
    np.testing.assert_allclose(class_weights(COUNTS, "none"), [1.0, 1.0, 1.0])


def test_rare_class_gets_the_largest_weight_and_mean_is_one():
    for scheme in ("balanced", "effective"):
        w = class_weights([3995, 436, 4097, 7215, 4830, 3171, 4965], scheme)
        assert w.argmax() == 1 and w.mean() == pytest.approx(1.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least one training image"):
        class_weights([5, 0, 3], "balanced")
    with pytest.raises(ValueError, match="unknown weighting"):
        class_weights(COUNTS, "focal")
