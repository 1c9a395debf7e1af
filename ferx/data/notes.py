"""Which files in a raw-data folder are notes, not data. prepare never reads them as FER2013,
and ferx-ablate's run identity does not count them: editing data/raw/README.md changes no
run. Kept apart (no numpy, no PIL) so that the ablation tool can ask without loading prepare."""

NOTE_SUFFIXES = (".md", ".txt")


def is_note(name: str) -> bool:
    """A README, a .md/.txt note or a dotfile (DVC's .gitignore, an editor's file)."""
    lowered = name.lower()
    return name.startswith(".") or lowered.startswith("readme") or lowered.endswith(NOTE_SUFFIXES)


def is_pointer(name: str) -> bool:
    """A DVC pointer (`dvc add`): it holds the hash of the data it tracks, never the data."""
    return name.endswith(".dvc")
