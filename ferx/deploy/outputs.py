"""Where `ferx-predict` writes, and what it never writes over: the Grad-CAM overlay names
(one per image, none shared), the check that no output is an input, another output or (without
--overwrite) an existing file, and the overlays themselves."""

from __future__ import annotations

from pathlib import Path


def gradcam_targets(out: Path, files: list[Path]) -> dict[Path, Path]:
    """Where each image's overlay goes: OUT.png for one image, OUT_<name>.png for several,
    OUT_<name>-2.png, -3, ... for later images whose names repeat an earlier one's (a/x.png
    and b/x.jpg), so no overlay is written over another."""
    if len(files) == 1:
        return {files[0]: out}
    targets: dict[Path, Path] = {}
    taken: set[Path] = set()
    for file in files:
        stem, n = f"{out.stem}_{file.stem}", 1
        target = out.with_name(f"{stem}{out.suffix or '.png'}")
        while target in taken:
            n += 1
            target = out.with_name(f"{stem}-{n}{out.suffix or '.png'}")
        taken.add(target)
        targets[file] = target
    return targets


def write_gradcam(targets: dict[Path, Path], predictions, faces, result) -> list[tuple[Path, Path]]:
    """One overlay PNG per classified image, at the path `gradcam_targets` gave it."""
    from ferx.plots import plt, save_figure

    ok = [p for p in predictions if p.error is None]
    written = []
    for i, prediction in enumerate(ok):
        target = targets[Path(prediction.file)]
        fig, axes = plt.subplots(1, 2, figsize=(4.4, 2.4))
        axes[0].imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        axes[1].imshow(faces[i], cmap="gray", vmin=0, vmax=255)
        axes[1].imshow(result["gradcam"][i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        for ax, name in zip(axes, ("face (48x48)", "Grad-CAM"), strict=True):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=8)
        fig.suptitle(
            f"{Path(prediction.file).name}: {prediction.predicted} "
            f"({prediction.probabilities[prediction.predicted]:.2f})",
            fontsize=9,
        )
        save_figure(fig, target)
        written.append((Path(prediction.file), target))
    return written


def _same_file(a: Path, b: Path) -> bool:
    """One file under two names: the same path once links are resolved, or a hard link."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.samefile(b)
    except OSError:  # either does not exist (yet): not the same file
        return False


def clashing_output(
    outputs: list[tuple[str, Path]], inputs: list[Path], overwrite: bool = False
) -> str | None:
    """Why these outputs may not be written (one is an input or a folder, two are one file,
    or one exists already and `overwrite` is off), or None. An input is never written over,
    --overwrite or not."""
    for i, (flag, out) in enumerate(outputs):
        if out.is_dir():
            return f"{flag} {out} is a folder: name a file"
        for source in inputs:
            if _same_file(out, source):
                return f"{flag} {out} is the input {source}; it would be overwritten: name another"
        if not overwrite and (out.exists() or out.is_symlink()):
            return f"{flag} {out} exists; pass --overwrite to replace it, or name another file"
        for other_flag, other in outputs[:i]:
            if _same_file(out, other):
                return f"{flag} {out} and {other_flag} {other} are the same file: name two files"
    return None
