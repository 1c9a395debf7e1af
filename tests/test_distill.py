"""Knowledge distillation: the soft loss on cases whose answer is known, and its place in the
training step and loop (off, or at weight 0, changes no bit)."""

import pytest
import torch
import torch.nn.functional as F

from ferx.models import MiniXception, ModelConfig
from ferx.params import TrainParams
from ferx.training.distill import Distill, soft_loss
from ferx.training.loop import fit, train_step
from ferx.training.run_spec import RunSpec, Split
from tests.conftest import tiny_splits

SPLITS = tiny_splits(96, seed=0)


def test_a_student_that_copies_the_teacher_has_zero_soft_loss():
    teacher = torch.randn(16, 7, generator=torch.Generator().manual_seed(0))
    for temperature in (0.5, 1.0, 4.0):
        assert soft_loss(teacher.clone(), teacher, temperature).item() == pytest.approx(0, abs=1e-6)
        shifted = teacher + torch.arange(16.0)[:, None]  # a constant per face: same softmax
        assert soft_loss(shifted, teacher, temperature).item() == pytest.approx(0, abs=1e-5)
        assert soft_loss(torch.zeros(16, 7), teacher, temperature).item() > 0.01


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_the_soft_gradient_is_t_times_the_gap_between_the_softened_distributions(temperature):
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(8, 7, generator=generator, requires_grad=True)
    teacher = 3 * torch.randn(8, 7, generator=generator)
    soft_loss(student, teacher, temperature).backward()
    gap = F.softmax(student.detach() / temperature, 1) - F.softmax(teacher / temperature, 1)
    torch.testing.assert_close(student.grad, temperature * gap / 8)
    # the value: T^2 x the mean over faces of KL(teacher's || student's softened distribution)
    p, q = F.softmax(teacher / temperature, 1), F.softmax(student.detach() / temperature, 1)
    kl = (p * (p.log() - q.log())).sum(1).mean()
    loss = soft_loss(student.detach(), teacher, temperature)
    assert loss.item() == pytest.approx(temperature**2 * kl.item(), rel=1e-5)


def test_bad_distillation_settings_are_refused():
    with pytest.raises(ValueError, match="temperature"):
        Distill(MiniXception(), 0.0, 0.5)
    with pytest.raises(ValueError, match="soft_weight"):
        Distill(MiniXception(), 2.0, 1.5)


def _params(**overrides) -> TrainParams:
    base = {"epochs": 1, "batch_size": 32, "lr": 3e-3, "precision": "fp32"}
    return TrainParams(**{**base, **overrides})


def test_the_step_mixes_the_soft_and_hard_losses_by_the_soft_weight():
    torch.manual_seed(0)
    student, teacher = MiniXception(ModelConfig()), MiniXception(ModelConfig(widths=(8, 16)))
    teacher.eval()
    x, y = SPLITS["train"].x[:16].float(), SPLITS["train"].y[:16]
    params = _params()
    with torch.no_grad():
        targets = teacher(x)
        student.train()
        before = student(x)  # the batch's logits before the step (train mode, as the step)
    distill = Distill(teacher, 2.0, 0.7)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.0)  # lr 0: the weights stay
    loss, logits = train_step(student, x, y, params, optimizer, soft=(targets, distill))
    torch.testing.assert_close(logits, before)  # the step's forward: the same batch logits
    hard = F.cross_entropy(before, y, label_smoothing=params.label_smoothing)
    expected = 0.7 * soft_loss(before, targets, 2.0) + 0.3 * hard
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


def _fit(tmp_path, name: str, distill=None, labels: torch.Tensor | None = None):
    splits = dict(SPLITS)
    if labels is not None:
        splits["train"] = Split(SPLITS["train"].x, labels)
    torch.manual_seed(0)
    model = MiniXception(ModelConfig())
    fit(model, splits, _params(), RunSpec(name, tmp_path / f"{name}.pt", distill=distill))
    return model.state_dict()


def _teacher() -> torch.nn.Module:
    torch.manual_seed(7)
    return MiniXception(ModelConfig(widths=(8, 16)))


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def _killed_after_one_epoch(path, distill=None) -> None:
    """A two-epoch run interrupted after its first: its unfinished checkpoint stays."""

    def interrupt(history):
        raise KeyboardInterrupt

    torch.manual_seed(0)
    spec = RunSpec("a", path, distill=distill, on_epoch_end=interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(MiniXception(ModelConfig()), SPLITS, _params(epochs=2), spec)


def test_a_plain_checkpoint_does_not_resume_as_a_distilled_run(tmp_path, capsys):
    path = tmp_path / "s.pt"
    _killed_after_one_epoch(path)
    spec = RunSpec("b", path, distill=Distill(_teacher(), 2.0, 0.5))
    torch.manual_seed(0)  # the same initial weights: only the distillation differs
    capsys.readouterr()
    fit(MiniXception(ModelConfig()), SPLITS, _params(epochs=2), spec)
    said = capsys.readouterr().out
    assert "(run settings changed); starting fresh" in said and "resuming after" not in said


def test_a_distilled_run_resumes_itself_and_ends_as_an_uninterrupted_one(tmp_path, capsys):
    distill = Distill(_teacher(), 2.0, 0.5)
    _killed_after_one_epoch(tmp_path / "k.pt", distill)  # the teacher has been on the device
    capsys.readouterr()
    torch.manual_seed(0)
    resumed = MiniXception(ModelConfig())
    spec = RunSpec("b", tmp_path / "k.pt", distill=Distill(_teacher(), 2.0, 0.5))
    fit(resumed, SPLITS, _params(epochs=2), spec)
    assert "resuming after epoch 1" in capsys.readouterr().out
    torch.manual_seed(0)
    whole = MiniXception(ModelConfig())
    spec = RunSpec("c", tmp_path / "w.pt", distill=Distill(_teacher(), 2.0, 0.5))
    fit(whole, SPLITS, _params(epochs=2), spec)
    assert _same(resumed.state_dict(), whole.state_dict())


def test_soft_weight_0_is_the_plain_run_and_1_ignores_the_labels(tmp_path):
    plain = _fit(tmp_path, "plain")
    assert _same(_fit(tmp_path, "w0", Distill(_teacher(), 2.0, 0.0)), plain)
    shuffled = SPLITS["train"].y[torch.randperm(len(SPLITS["train"].y))]
    only_soft = _fit(tmp_path, "w1", Distill(_teacher(), 2.0, 1.0))
    assert _same(_fit(tmp_path, "w1-shuffled", Distill(_teacher(), 2.0, 1.0), shuffled), only_soft)
    assert not _same(only_soft, plain)  # and the teacher does change the training
