"""Knowledge distillation (Hinton et al. 2015): a student learns from a teacher's class
probabilities, softened by a temperature, as well as from the labels.

The teacher sees each training batch as the student does (augmented, mixed), in eval mode and
without gradients; its logits are the soft targets of that very batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Distill:
    """What a distilled run adds to a RunSpec: the teacher and how much it counts."""

    teacher: torch.nn.Module
    temperature: float  # T > 0: both distributions are softmax(logits / T)
    soft_weight: float  # 0..1: loss = soft_weight * soft + (1 - soft_weight) * hard

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be above 0, got {self.temperature}")
        if not 0 <= self.soft_weight <= 1:
            raise ValueError(f"soft_weight must be between 0 and 1, got {self.soft_weight}")


def soft_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch.

    Zero when the student's logits equal the teacher's (or differ by a constant per face). Its
    gradient with respect to the student's logits is T * (softmax(student / T) -
    softmax(teacher / T)) / batch: the T^2 keeps the gradient's size comparable across
    temperatures, as Hinton et al. advise."""
    t = float(temperature)
    student = F.log_softmax(student_logits.float() / t, dim=1)
    teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    return t * t * F.kl_div(student, teacher, reduction="batchmean", log_target=True)


@torch.no_grad()
def teacher_logits(teacher: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None):
    """The teacher's float32 logits for a batch, under the student's autocast (dtype None:
    none), in eval mode whatever mode it was in."""
    teacher.eval()
    with torch.autocast(x.device.type, dtype or torch.bfloat16, enabled=dtype is not None):
        return teacher(x).float()
