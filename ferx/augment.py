"""Batched, per-sample augmentation: one affine resample for flip, rotation, shift and zoom."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ferx.params import AugmentParams


def augment_batch(
    x: torch.Tensor, params: AugmentParams, generator: torch.Generator
) -> torch.Tensor:
    """Randomly flip, rotate, translate and scale each image of a (N, 1, H, W) float batch.

    All randomness comes from `generator`, so a seeded run is repeatable. Flip and the affine
    parts are folded into one 2x3 matrix per image and applied by a single grid_sample.
    """
    n = x.shape[0]
    flip = torch.ones(n)
    if params.hflip:
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    if params.rotate_deg == 0 and params.translate == 0 and params.scale == 0:
        flipped = flip < 0
        return torch.where(flipped[:, None, None, None], x.flip(-1), x) if params.hflip else x

    def uniform(half_width: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * half_width

    angle = uniform(math.radians(params.rotate_deg))
    zoom = 1 + uniform(params.scale)
    shift_x, shift_y = uniform(2 * params.translate), uniform(2 * params.translate)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # theta maps output coordinates to input ones (in [-1, 1]); the flip mirrors the input x.
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin * flip, shift_x], dim=1),
            torch.stack([sin, cos, shift_y], dim=1),
        ],
        dim=1,
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
