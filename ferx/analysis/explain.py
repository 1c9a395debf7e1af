"""The explain stage's work: probe images, their Grad-CAM, guided backpropagation and guided
Grad-CAM (computed by ferx/models/gradcam.py, captum doing the maths), and the figures.

Grad-CAM is taken at each network's `cam_layer`, a feature block before the classifier (see
ferx/models/ for which and why), for the predicted class and upsampled bilinearly to 48x48;
guided Grad-CAM is guided backprop times that map, as in Selvaraju et al. (2017) and
captum's GuidedGradCam.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ferx.data.faces import IMAGE_SUFFIXES, to_face_array
from ferx.errors import UserError
from ferx.labels import CLASS_NAMES
from ferx.models.gradcam import explain_batch

__all__ = ["ProbeError", "explain_batch", "holds_images", "load_probes", "plot_grid"]


class ProbeError(UserError):
    """A probe folder is missing, empty, or holds no usable image."""


@dataclass(frozen=True)
class Probe:
    path: Path
    label: int  # index into CLASS_NAMES, from the file name
    image: np.ndarray  # uint8 48 x 48


def label_from_name(path: Path) -> int | None:
    """`happy.png`, `Happy_2.jpg`, `happy-face.jpeg` -> index of happy; None if unknown."""
    stem = path.stem.lower().replace("-", "_").split("_")[0]
    return CLASS_NAMES.index(stem) if stem in CLASS_NAMES else None


def is_image_file(path: Path) -> bool:
    return (
        path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES
    )


def holds_images(folder: str | Path) -> bool:
    """Whether a probe folder has any image file (a user's folder may still be empty)."""
    folder = Path(folder)
    return folder.is_dir() and any(is_image_file(p) for p in folder.iterdir())


def load_probes(folder: str | Path, warn=None) -> list[Probe]:
    """The labelled images of a folder; other files are skipped with a warning naming them."""
    warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
    folder = Path(folder)
    if not folder.is_dir():
        raise ProbeError(f"{folder}: probe folder not found")
    probes = []
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):  # README.md and the like are not probes
            continue
        label = label_from_name(path)
        if label is None:
            warn(f"{path}: skipped, its name is not a label ({', '.join(CLASS_NAMES)})")
            continue
        try:
            with Image.open(path) as image:
                probes.append(Probe(path, label, to_face_array(image)))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            warn(f"{path}: skipped, not a readable image ({type(exc).__name__})")
    if not probes:
        raise ProbeError(f"{folder}: no usable probe image (want files like happy.png)")
    return probes


def summarise(
    probes: list[Probe], result: dict[str, np.ndarray], model: str, folder: str | Path
) -> dict[str, Any]:
    """The per-image JSON: true and predicted label, class probabilities, correct or not."""
    images = []
    for i, probe in enumerate(probes):
        predicted = int(result["predicted"][i])
        images.append(
            {
                "file": probe.path.name,
                "true": CLASS_NAMES[probe.label],
                "predicted": CLASS_NAMES[predicted],
                "correct": predicted == probe.label,
                "probabilities": {
                    name: round(float(p), 4)
                    for name, p in zip(CLASS_NAMES, result["probabilities"][i], strict=True)
                },
            }
        )
    correct = sum(image["correct"] for image in images)
    return {
        "model": model,
        "probes": str(folder),
        "n_images": len(images),
        "share_correct": correct / len(images),
        "images": images,
    }


def _signed_to_grey(maps: np.ndarray) -> np.ndarray:
    """Signed guided maps shown as in the papers: centred on grey, contrast-stretched."""
    scale = np.abs(maps).reshape(len(maps), -1).max(axis=1)[:, None, None]
    scaled = np.divide(maps, scale, out=np.zeros_like(maps), where=scale > 0)
    return np.clip(0.5 + 0.5 * scaled, 0, 1)


def plot_grid(
    probes: list[Probe], result: dict[str, np.ndarray], path: str | Path, title: str
) -> None:
    """A row per image: input | Grad-CAM over the face | guided backprop | guided Grad-CAM."""
    from ferx.plots import plt, save_figure

    n = len(probes)
    fig, axes = plt.subplots(n, 4, figsize=(7.6, 2.05 * n + 0.5), squeeze=False)
    guided = _signed_to_grey(result["guided_backprop"])
    guided_cam = _signed_to_grey(result["guided_gradcam"])
    for i, probe in enumerate(probes):
        predicted = int(result["predicted"][i])
        ok = predicted == probe.label
        p = result["probabilities"][i][predicted]
        heading = (
            f"true {CLASS_NAMES[probe.label]} | predicted {CLASS_NAMES[predicted]} ({p:.2f})"
            + ("" if ok else "  WRONG")
        )
        row = axes[i]
        row[0].imshow(probe.image, cmap="gray", vmin=0, vmax=255)
        row[1].imshow(probe.image, cmap="gray", vmin=0, vmax=255)
        row[1].imshow(result["gradcam"][i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        row[2].imshow(guided[i], cmap="gray", vmin=0, vmax=1)
        row[3].imshow(guided_cam[i], cmap="gray", vmin=0, vmax=1)
        for ax, name in zip(
            row, ("input", "Grad-CAM", "guided backprop", "guided Grad-CAM"), strict=True
        ):
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_xlabel(name, fontsize=8)
                ax.xaxis.set_label_position("top")
        row[0].set_title(heading, loc="left", fontsize=8, color="black" if ok else "red", x=0.0)
        if not ok:
            for spine in row[0].spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2.5)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
