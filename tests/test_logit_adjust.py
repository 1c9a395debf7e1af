"""Improve's knobs for the rare classes: post-hoc logit adjustment, the logit-adjusted loss,
class-balanced sampling; each checked on a case whose answer is known."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferx.labels import NUM_CLASSES
from ferx.metrics import summary_metrics
from ferx.models import ModelConfig, build_model
from ferx.params import TrainParams
from ferx.training.logit_adjust import (
    OFFSET_GRID,
    TAU_GRID,
    add_to_head,
    adjusted,
    choose_offsets,
    choose_tau,
    cross_fitted,
    folds_of,
)
from ferx.training.loop import epoch_order, shuffled, train_step

PRIOR = torch.tensor([0.14, 0.015, 0.14, 0.25, 0.17, 0.11, 0.175])
LOG_PRIOR = PRIOR.log()


def _faces_seen_through_the_prior(margin: float, n: int = 700, seed: int = 0):
    """Labels drawn from PRIOR; logits = log prior + margin on the true class. Raw, the rare
    classes lose to the frequent ones; minus tau * log prior, every face is right once
    margin > (1 - tau) * (largest log prior - the face's)."""
    rng = np.random.default_rng(seed)
    labels = torch.from_numpy(rng.choice(NUM_CLASSES, size=n, p=PRIOR.numpy() / PRIOR.sum().item()))
    logits = LOG_PRIOR.repeat(n, 1) + margin * F.one_hot(labels, NUM_CLASSES)
    return logits, labels


def test_tau_is_the_smallest_that_makes_every_face_right_when_that_is_the_best():
    margin = 0.9
    logits, labels = _faces_seen_through_the_prior(margin)
    assert summary_metrics(logits, labels)["accuracy"] < 1  # the rare classes lose, raw
    gap = (LOG_PRIOR.max() - LOG_PRIOR[labels.unique()]).max().item()
    expected = min(t for t in TAU_GRID if margin > (1 - t) * gap + 1e-9)
    choice = choose_tau(logits, labels, LOG_PRIOR, max_accuracy_drop=1.0)
    assert choice.tau == pytest.approx(expected)
    assert choice.at(choice.tau)["macro_f1"] == 1.0 and choice.at(0.0)["macro_f1"] < 1.0
    assert [row["tau"] for row in choice.scanned] == sorted(TAU_GRID)


def test_tau_stays_0_when_no_adjustment_helps_and_obeys_the_accuracy_floor():
    labels = torch.arange(NUM_CLASSES).repeat(20)
    perfect = 5 * F.one_hot(labels, NUM_CLASSES).float()
    assert choose_tau(perfect, labels, LOG_PRIOR, 1.0).tau == 0.0  # nothing beats the model

    # brute force on noisy logits: the choice is the best macro-F1 among the allowed taus
    rng = torch.Generator().manual_seed(3)
    logits, labels = _faces_seen_through_the_prior(0.6, n=900, seed=1)
    logits = logits + torch.randn(logits.shape, generator=rng)
    for drop in (0.0, 0.01, 1.0):
        choice = choose_tau(logits, labels, LOG_PRIOR, drop)
        rows = [summary_metrics(adjusted(logits, LOG_PRIOR, t), labels) | {"tau": t}
                for t in sorted(TAU_GRID)]  # fmt: skip
        allowed = [r for r in rows if r["accuracy"] >= rows[0]["accuracy"] - drop - 1e-12]
        best = max(r["macro_f1"] for r in allowed)
        assert choice.tau == min(r["tau"] for r in allowed if r["macro_f1"] == best), drop
        assert choice.at(choice.tau)["accuracy"] >= rows[0]["accuracy"] - drop - 1e-12
    assert (
        choose_tau(logits, labels, LOG_PRIOR, 0.0).tau
        != choose_tau(logits, labels, LOG_PRIOR, 1.0).tau
    )  # the floor binds in this case


def test_per_class_offsets_undo_a_prior_that_hides_the_rare_classes():
    logits, labels = _faces_seen_through_the_prior(1.5)
    choice = choose_offsets(logits, labels, max_accuracy_drop=1.0)
    assert choice.before["macro_f1"] < 1.0 and choice.after["macro_f1"] == 1.0
    shifted = logits + torch.tensor(choice.offsets)
    assert summary_metrics(shifted, labels)["macro_f1"] == 1.0  # the figures are the model's
    assert all(v in OFFSET_GRID for v in choice.offsets)
    rare = int(PRIOR.argmin())
    assert choice.offsets[rare] == max(choice.offsets)  # the rarest class is raised most


def test_offsets_stay_zero_when_nothing_helps_and_each_is_the_best_given_the_others():
    labels = torch.arange(NUM_CLASSES).repeat(20)
    perfect = 5 * F.one_hot(labels, NUM_CLASSES).float()
    choice = choose_offsets(perfect, labels, 1.0)
    assert choice.offsets == [0.0] * NUM_CLASSES and choice.rounds == 1

    rng = torch.Generator().manual_seed(3)
    logits, labels = _faces_seen_through_the_prior(0.6, n=900, seed=1)
    logits = logits + torch.randn(logits.shape, generator=rng)
    for drop in (0.0, 0.01):
        choice = choose_offsets(logits, labels, drop, rounds=20)
        before = summary_metrics(logits, labels)
        after = summary_metrics(logits + torch.tensor(choice.offsets), labels)
        assert choice.before["macro_f1"] == pytest.approx(before["macro_f1"])
        assert after["macro_f1"] == pytest.approx(choice.after["macro_f1"])
        assert after["macro_f1"] > before["macro_f1"]
        assert after["accuracy"] >= before["accuracy"] - drop - 1e-12  # the floor holds
        assert choice.converged
        # converged: no single class's grid value does better within the floor
        for c in range(NUM_CLASSES):
            for value in OFFSET_GRID:
                candidate = torch.tensor(choice.offsets)
                candidate[c] = value
                found = summary_metrics(logits + candidate, labels)
                if found["accuracy"] >= before["accuracy"] - drop - 1e-12:
                    assert found["macro_f1"] <= after["macro_f1"] + 1e-9, (drop, c, value)


def test_of_offsets_that_score_alike_the_smallest_in_size_is_kept():
    # class-0 faces right by 1.0, class-1 faces wrong by 0.5: lowering class 0 by anything
    # from 0.6 to 1.0 makes every face right (at exactly 1.0, ties go to class 0, still right)
    labels = torch.tensor([0] * 10 + [1] * 10)
    logits = torch.full((20, NUM_CLASSES), -10.0)
    logits[:, 0], logits[:10, 1], logits[10:, 1] = 1.0, 0.0, 0.5
    choice = choose_offsets(logits, labels, max_accuracy_drop=1.0)
    assert choice.after["accuracy"] == 1.0
    assert choice.offsets == [-0.6] + [0.0] * (NUM_CLASSES - 1)  # not -1.0, not 2.0 elsewhere
    assert choice.converged and not choice.at_bound


def test_a_choice_at_the_edge_of_the_grid_is_flagged():
    # class-1 faces wrong by 0.5 to 1.95: each larger shift puts more right, up to the edge
    labels = torch.tensor([0] * 10 + [1] * 10)
    logits = torch.full((20, NUM_CLASSES), -10.0)
    logits[:, 0], logits[:10, 1] = 3.0, 0.0
    logits[10:, 1] = 3.0 - torch.tensor([0.5, 1.0, 1.5, 1.95] * 2 + [1.95] * 2)
    choice = choose_offsets(logits, labels, max_accuracy_drop=1.0)
    assert choice.offsets[0] == -2.0 and choice.at_bound
    assert choice.after["accuracy"] == 1.0


def test_folds_hold_each_class_in_the_same_proportion():
    labels = np.array([0, 0, 0, 1, 1, 2, 0, 1, 2, 2, 2])
    folds = folds_of(labels)
    for c in range(3):
        counts = np.bincount(folds[labels == c], minlength=2)
        assert abs(counts[0] - counts[1]) <= 1
    assert np.array_equal(folds, folds_of(labels))  # the same faces every time


def test_each_fold_is_adjusted_by_what_was_chosen_on_the_other():
    logits, labels = _faces_seen_through_the_prior(1.5)
    logits = logits.clone()
    seen = []

    def choose(chosen_logits, chosen_labels):
        seen.append(set(chosen_logits[:, 0].tolist()))
        return torch.zeros(NUM_CLASSES)

    ids = logits.clone()
    ids[:, 0] = torch.arange(len(labels), dtype=torch.float32) + 1000  # each face named
    cross_fitted(ids, labels, choose)
    folds = folds_of(labels.numpy())
    for k, faces in enumerate(seen):
        assert faces == set((np.flatnonzero(folds != k) + 1000.0).tolist())

    # offsets that hold beyond the faces they were chosen on keep their worth out of sample
    found = cross_fitted(
        logits, labels, lambda x, y: torch.tensor(choose_offsets(x, y, 1.0).offsets)
    )
    assert found["macro_f1"] == 1.0 > summary_metrics(logits, labels)["macro_f1"]


def test_out_of_sample_the_offsets_fitted_to_noise_are_worth_less_than_in_sample():
    rng = np.random.default_rng(5)
    labels = torch.from_numpy(rng.integers(0, NUM_CLASSES, 600))
    logits = torch.from_numpy(rng.normal(size=(600, NUM_CLASSES))).float()  # nothing to learn
    choice = choose_offsets(logits, labels, 0.05)
    assert choice.after["macro_f1"] > choice.before["macro_f1"]  # in sample: a gain
    found = cross_fitted(
        logits, labels, lambda x, y: torch.tensor(choose_offsets(x, y, 0.05).offsets)
    )
    assert found["macro_f1"] < choice.after["macro_f1"] - 0.01


@pytest.mark.parametrize("arch", ["mini_xception", "baseline_cnn", "resnet18"])
def test_an_offset_in_the_head_biases_is_the_same_offset_on_every_logit(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch)).eval()
    x = torch.randint(0, 256, (6, 1, 48, 48), dtype=torch.uint8).float()
    offset = -0.8 * LOG_PRIOR
    with torch.no_grad():
        before = model(x)
        add_to_head(model, offset)
        after = model(x)
    torch.testing.assert_close(after, before + offset, atol=1e-4, rtol=1e-5)


def test_the_adjustment_reaches_the_onnx_graph(tmp_path):
    pytest.importorskip("onnxruntime")
    from ferx.deploy.export import export_onnx
    from ferx.onnx_model import OnnxModel

    torch.manual_seed(1)
    model = build_model(ModelConfig()).eval()
    faces = torch.randint(0, 256, (5, 1, 48, 48), dtype=torch.uint8)
    with torch.no_grad():
        raw = model(faces.float())
        add_to_head(model, -1.3 * LOG_PRIOR)
        expected = model(faces.float())
    export_onnx(model, tmp_path / "adjusted.onnx")
    got = OnnxModel(tmp_path / "adjusted.onnx").logits(faces.numpy()[:, 0])
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(got, (raw - 1.3 * LOG_PRIOR).numpy(), atol=1e-4)


def test_the_logit_adjusted_loss_adds_the_offset_in_the_loss_only():
    torch.manual_seed(2)
    model = build_model(ModelConfig(widths=[8, 16], stem_width=4))
    params = TrainParams(precision="fp32", label_smoothing=0.0)
    x = torch.randint(0, 256, (8, 1, 48, 48)).float()
    y = torch.randint(0, NUM_CLASSES, (8,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing moves: compare losses
    plain, logits = train_step(model, x, y, params, optimizer)
    offset = LOG_PRIOR
    with_offset, same_logits = train_step(model, x, y, params, optimizer, offset=offset)
    torch.testing.assert_close(same_logits, logits)  # what the model computes: unchanged
    torch.testing.assert_close(with_offset, F.cross_entropy(logits + offset, y))
    torch.testing.assert_close(plain, F.cross_entropy(logits, y))
    assert not torch.allclose(with_offset, plain)  # the offset moved the loss


def test_class_balanced_sampling_draws_each_class_about_equally_and_shuffle_is_unchanged():
    labels = torch.from_numpy(
        np.repeat(np.arange(NUM_CLASSES), [4000, 60, 500, 900, 700, 300, 600])
    )
    draw = epoch_order(labels, "class_balanced")
    order = draw(len(labels), torch.Generator().manual_seed(0))
    shares = torch.bincount(labels[order], minlength=NUM_CLASSES).double() / len(order)
    assert len(order) == len(labels)
    assert shares.sub(1 / NUM_CLASSES).abs().max() < 0.02  # Disgust drawn as often as Happy
    again = draw(len(labels), torch.Generator().manual_seed(0))
    assert torch.equal(order, again)  # seeded: a resumed epoch draws the same faces
    # the default is the loop's plain shuffle, as before: the same permutation, bit for bit
    assert epoch_order(labels, "shuffle") is shuffled
    expected = torch.randperm(len(labels), generator=torch.Generator().manual_seed(5))
    assert torch.equal(shuffled(len(labels), torch.Generator().manual_seed(5)), expected)
    with pytest.raises(ValueError, match="sampling must be"):
        epoch_order(labels, "stratified")
