import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ferx.data.synthetic import FER_CLASS_COUNTS, class_counts, make_synthetic_fer
from ferx.labels import CLASS_NAMES


def test_same_seed_same_faces_other_seed_other_faces():
    a, b, c = (make_synthetic_fer(300, seed) for seed in (5, 5, 6))
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.pixels, c.pixels)


def test_class_and_split_proportions_follow_fer2013():
    table = make_synthetic_fer(3000, seed=0)
    assert table.pixels.shape[1:] == (48, 48) and table.pixels.dtype == np.uint8
    train = table.labels[table.usage == 0]
    share = np.bincount(train, minlength=7) / len(train)
    expected = FER_CLASS_COUNTS / FER_CLASS_COUNTS.sum()
    np.testing.assert_allclose(share, expected, atol=0.01)
    assert 0.01 < share[CLASS_NAMES.index("disgust")] < 0.02
    split_share = np.bincount(table.usage) / len(table.usage)
    np.testing.assert_allclose(split_share, [0.8, 0.1, 0.1], atol=0.01)


def test_tiny_sets_still_hold_every_class_in_every_split():
    assert (class_counts(70) >= 2).all()
    table = make_synthetic_fer(70, seed=1)
    for split in range(3):
        assert set(table.labels[table.usage == split]) == set(range(7))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_expressions_are_learnable_but_not_trivial():
    table = make_synthetic_fer(2400, seed=2)
    x = table.pixels.reshape(len(table.labels), 24, 2, 24, 2).mean(axis=(2, 4)).reshape(-1, 576)
    x = (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-6)
    train, test = table.usage == 0, table.usage != 0
    model = LogisticRegression(max_iter=300).fit(x[train], table.labels[train])
    accuracy = model.score(x[test], table.labels[test])
    majority = np.bincount(table.labels[test]).max() / test.sum()
    assert accuracy > majority + 0.15, (accuracy, majority)
