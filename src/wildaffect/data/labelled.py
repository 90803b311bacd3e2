"""Labelled media (stills, clips, utterances) -> an ABAW EXPR annotation tree for ``train``.

``wildaffect train`` reads ABAW trees over a feature cache. A dataset that labels whole files
(one expression class per photo or utterance) becomes such a tree by treating each file as a
"video" named by its preprocessed record, with one label line per record frame (a photo has
one frame). A record whose face was not found keeps its label: the frame then carries no
visual features (the dataset zeroes them) and the model sees its no-face input.

Train and validation are split by *group* (the person: identity, speaker), never by file, with
a seeded ``StratifiedGroupKFold``: ``validation_fold=k`` of ``folds=K`` puts fold k in
``Validation_Set``, so a K-fold cross-validation is K imports.

The generic part (:class:`LabelledItem`, :func:`group_folds`, :func:`write_expression_tree`)
knows nothing of any dataset; readers such as :func:`read_faces_expression` turn one
dataset's label file into items.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wildaffect.data.abaw import ANNOTATION_SUFFIX, format_annotation
from wildaffect.data.cache import FeatureCache
from wildaffect.errors import InputError, WildaffectError
from wildaffect.labels import EXPR_NAMES, SPLITS, TASK_SPECS, Task

#: What the import wrote and how (beside the task folder in the tree root).
IMPORT_MANIFEST = "import.json"


@dataclass(frozen=True)
class LabelledItem:
    """One labelled file. ``group``: whose it is (never split across train/validation)."""

    media: Path
    label: int  # EXPR class id, 0..7
    group: str


@dataclass
class ImportSummary:
    """What :func:`write_expression_tree` wrote."""

    root: Path
    videos: dict[str, list[str]]  # split -> record names
    class_counts: dict[str, dict[str, int]]  # split -> class name -> files
    groups: dict[str, int]  # split -> distinct groups
    frames: dict[str, int]  # split -> label lines
    no_face: dict[str, int] = field(default_factory=dict)  # split -> records without any face

    def to_dict(self) -> dict:
        return {"root": str(self.root), "class_counts": self.class_counts,
                "groups": self.groups, "frames": self.frames, "no_face": self.no_face,
                "videos": self.videos}


def group_folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(N,) fold id of every item: ``StratifiedGroupKFold(folds, shuffle=True, seed)``."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(set(groups.tolist()))
    if folds < 2 or folds > n_groups:
        raise WildaffectError(f"folds must be between 2 and the number of groups ({n_groups}), "
                              f"got {folds}")
    fold_of = np.full(len(labels), -1, int)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    try:
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
            fold_of[test] = k
    except ValueError as err:  # e.g. every class has fewer members than folds
        raise WildaffectError(f"cannot split into {folds} group folds: {err}") from None
    return fold_of


def write_expression_tree(
    items: Sequence[LabelledItem],
    cache: FeatureCache | str | Path,
    out: str | Path,
    *,
    folds: int = 5,
    validation_fold: int = 0,
    seed: int = 0,
    record_names: Sequence[str] | None = None,
) -> ImportSummary:
    """Write ``out/EXPR_Recognition_Challenge/{Train_Set,Validation_Set}/<record>.txt``.

    ``record_names``: the cache record of each item (default: the names ``preprocess`` gives
    the items' media files). Every record must exist in ``cache``. The task folder is built
    aside and swapped in whole, so an older import (another fold) leaves no stale files.
    """
    from wildaffect.preprocess import record_names as default_record_names

    cache = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
    if not items:
        raise WildaffectError("nothing to import: no labelled items")
    if not 0 <= validation_fold < folds:
        raise WildaffectError(f"validation fold must be in 0..{folds - 1}, got {validation_fold}")
    bad = [it for it in items if not 0 <= it.label < len(EXPR_NAMES)]
    if bad:
        raise InputError(bad[0].media, f"label {bad[0].label} is not an EXPR class id "
                         f"0..{len(EXPR_NAMES) - 1}")
    labels = np.array([it.label for it in items])
    groups = np.array([it.group for it in items])
    is_val = group_folds(labels, groups, folds, seed) == validation_fold
    names = list(record_names) if record_names is not None else default_record_names(
        [it.media for it in items])
    if len(names) != len(items) or len(set(names)) != len(names):
        raise WildaffectError("record names must be one distinct name per item")
    missing = [(it, n) for it, n in zip(items, names, strict=True) if not cache.has_record(n)]
    if missing:
        raise InputError(missing[0][0].media, f"no preprocessed record {missing[0][1]!r} in "
                         f"{cache.root} ({len(missing)} of {len(items)} items lack one); "
                         "run `wildaffect preprocess` on the files first")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task_dir = out / TASK_SPECS[Task.EXPR].challenge_dir
    build = Path(tempfile.mkdtemp(prefix=f".{task_dir.name}.", suffix=".tmp", dir=out))
    summary = ImportSummary(root=out, videos={}, class_counts={}, groups={}, frames={},
                            no_face={})
    try:
        for split, in_split in zip(SPLITS, (~is_val, is_val), strict=True):
            (build / split).mkdir()
            index = np.flatnonzero(in_split)
            summary.videos[split] = [names[i] for i in index]
            summary.groups[split] = len(set(groups[index].tolist()))
            summary.class_counts[split] = {
                name: int((labels[index] == c).sum()) for c, name in enumerate(EXPR_NAMES)
            }
            summary.frames[split] = summary.no_face[split] = 0
            for i in index:
                has_face = cache.read_array(names[i], "has_face", mmap=True)  # (T,)
                if has_face.shape[0] == 0:
                    raise InputError(cache.record_dir(names[i]), "record has no frames")
                text = format_annotation(Task.EXPR, np.full(has_face.shape[0], labels[i]))
                (build / split / f"{names[i]}{ANNOTATION_SUFFIX}").write_text(text)
                summary.frames[split] += int(has_face.shape[0])
                summary.no_face[split] += int(not has_face.any())
        _swap_in(build, task_dir)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    from wildaffect.io.atomic import atomic_write_text

    manifest = {"folds": folds, "validation_fold": validation_fold, "seed": seed,
                "cache": str(cache.root), **summary.to_dict()}
    atomic_write_text(out / IMPORT_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return summary


def _swap_in(build: Path, target: Path) -> None:
    """Replace ``target`` by the finished folder ``build`` (old one moved aside, then removed)."""
    os.chmod(build, 0o755)
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(build, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(build, target)


# --------------------------------------------------------------------------- faces-expression

#: LFW "_0001", the actor photos "_12", the stock series "_2868582k" end the image names.
FACES_IDENTITY_SUFFIX = re.compile(r"_\d+k?\.jpg$")
FACES_COLUMNS = ("image", "expression")


def faces_identity(image_name: str) -> str:
    """The person of a faces-expression photo: ``Aaron_Eckhart_0001.jpg`` -> ``Aaron_Eckhart``."""
    return FACES_IDENTITY_SUFFIX.sub("", image_name)


def read_faces_expression(
    labels_csv: str | Path, images_dir: str | Path | None = None
) -> tuple[list[LabelledItem], list[str]]:
    """Items of the faces-expression ``labels.csv`` (``image,expression[,source_label]``).

    -> (items in file order, images dropped because their duplicate rows disagree). Exact
    duplicate rows count once. Images live in ``images_dir`` (default ``images/`` beside the
    CSV). Unknown classes, missing images and missing columns raise :class:`InputError` naming
    the CSV line.
    """
    import pandas as pd

    labels_csv = Path(labels_csv)
    images = Path(images_dir) if images_dir is not None else labels_csv.parent / "images"
    try:
        table = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(labels_csv, "file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(labels_csv, f"not a readable CSV ({str(err).strip()})") from None
    table.columns = [c.strip().lower() for c in table.columns]
    absent = [c for c in FACES_COLUMNS if c not in table.columns]
    if absent:
        raise InputError(labels_csv, f"missing column(s) {', '.join(absent)}; "
                         f"expected a header with {', '.join(FACES_COLUMNS)}", line=1)
    table = table.assign(image=table.image.str.strip(), expression=table.expression.str.strip(),
                         line=np.arange(2, len(table) + 2))
    if table.empty:
        raise InputError(labels_csv, "no labelled rows")
    by_name = {name.lower(): i for i, name in enumerate(EXPR_NAMES)}
    for row in table.itertuples():
        if not row.image:
            raise InputError(labels_csv, "empty image name", line=row.line)
        if row.expression.lower() not in by_name:
            raise InputError(labels_csv, f"unknown expression {row.expression!r} for "
                             f"{row.image}; valid: {', '.join(EXPR_NAMES)}", line=row.line)
    table["label"] = table.expression.str.lower().map(by_name)
    n_labels = table.groupby("image").label.nunique()
    conflicting = sorted(n_labels[n_labels > 1].index)
    table = table[~table.image.isin(conflicting)].drop_duplicates("image")
    items = []
    for row in table.itertuples():
        path = images / row.image
        if not path.is_file():
            raise InputError(labels_csv, f"image {row.image} not found in {images}",
                             line=row.line)
        items.append(LabelledItem(media=path, label=int(row.label),
                                  group=faces_identity(row.image)))
    return items, conflicting
