"""Labelled and unlabelled splits: which datasets a training run may read labels from.

Every scene physworld generates carries its ground truth (states, parameters, masks), so "unlabelled"
is a promise about use, kept by marking the dataset and checking the mark where it is read:

- `physworld generate --split unlabelled` records `"split": "unlabelled"` in the dataset's config
  (generation.json and manifest.json's "config"; a labelled dataset has no entry, so every dataset
  generated before this mark existed reads as labelled).
- A run that must not see labels (the Supervisor's fine-tune, recipes/supervisor.py) calls
  `require_split(dir, "unlabelled", flag)` and reads its clips through `unlabelled_clips`, which opens
  the RGB stream only: states, segmentation, flow and boxes are never loaded.
- A run that trains on labels (the Visual Expert's supervised recipe) calls
  `require_split(dir, "labelled", flag)`, so an unlabelled split cannot leak into supervised training.
  Evaluation may read an unlabelled split's labels: that is how the fine-tune is scored.

Either mistake is one line naming the flag, the dataset and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

from physworld.data.store import MANIFEST, StoreError

SPLITS = ("labelled", "unlabelled")


class SplitError(StoreError):
    """A dataset passed where the other kind of split is expected."""


def check_split_name(name: str, flag: str = "--split") -> str:
    if name not in SPLITS:
        raise ValueError(f"{flag} {name!r}: choose labelled or unlabelled")
    return name


def dataset_split(data_dir) -> str:
    """ "labelled" or "unlabelled", from the finished dataset's manifest."""
    path = Path(data_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(
            f"{data_dir}: no dataset here ({MANIFEST} missing); run physworld generate"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise StoreError(f"{path}: unreadable ({e}); run physworld validate") from None
    split = manifest.get("config", {}).get("split", "labelled") if isinstance(manifest, dict) else None
    if split not in SPLITS:
        raise StoreError(f"{path}: config.split is {split!r}, expected labelled or unlabelled")
    return split


def require_split(data_dir, expected: str, flag: str) -> None:
    """Refuse, in one line, a dataset whose split is not `expected`."""
    split = dataset_split(data_dir)
    if split == expected:
        return
    if expected == "unlabelled":
        raise SplitError(
            f"{flag} {data_dir}: a labelled split; the fine-tune reads unlabelled clips only. Generate them "
            "with `physworld generate ... --split unlabelled --with-clips`, or pass this dataset where "
            "labels are expected"
        )
    raise SplitError(
        f"{flag} {data_dir}: an unlabelled split (generated with --split unlabelled); its labels are not "
        "for training. Pass a dataset generated without --split unlabelled"
    )


def unlabelled_clips(data_dir, flag: str, progress: bool = False):
    """The RGB frames of an unlabelled split's clips: a ClipDataset that opens no label stream."""
    from physworld.data.clip_view import ClipDataset, prepare_clips

    require_split(data_dir, "unlabelled", flag)
    return ClipDataset(prepare_clips(data_dir, progress=progress), streams=("rgb",))
