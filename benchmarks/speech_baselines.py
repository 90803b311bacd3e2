"""Per-utterance baselines for the voice model: openSMILE functionals + linear classifiers, LOSO.

Issue #7 asks the default voice model to beat eGeMAPS functionals + logistic regression on
EmoDB leave-one-speaker-out. This script measures how far per-utterance features carry with
the same protocol as ``benchmarks/speech_emotion.py``:

* items: the 374 EmoDB utterances (7 speakers) and, unless ``--no-crema-d``, the 12 CREMA-D
  clips, which join every training fold (never tested). Features are computed from each
  record's 16 kHz ``audio.npy`` in ``--cache`` (what the model sees; the CREMA-D .mp3/.flv
  cannot be read by openSMILE directly), so build the cache with ``speech_emotion.py`` first;
* features: openSMILE functionals ComParE_2016 (6373), eGeMAPSv02 (88), emobase (988); and,
  for every frame encoder already extracted into the cache (``--frames``), the mean and
  standard deviation over an utterance's 20 ms frames (a pooled view of what the model reads);
* classifiers: ``StandardScaler`` + logistic regression, and ``StandardScaler`` + linear SVM;
  C is chosen per outer fold by an inner leave-one-speaker-out over the *training* EmoDB
  speakers only (CREMA-D always in the inner training part), scored by the same UAR; the
  held-out speaker is never seen before its predictions are made.

Score: UAR over the 7 EmoDB classes (boredom = Other), pooled over all out-of-fold predictions
and as the mean over speakers.

Usage (from the repo root, after ``speech_emotion.py`` built ``CACHE``)::

    .venv/bin/python benchmarks/speech_baselines.py --data ../shared/data --cache CACHE \
        --frames logmel-egemaps,logmel-compare --out benchmarks/results/speech_baselines.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wildaffect.data.speech import SpeechItem
from wildaffect.io.atomic import atomic_write_text
from wildaffect.train.voice import print_uar_table, speech_items, uar, uar_summary

#: openSMILE functional sets compared (FeatureSet member names).
FUNCTIONAL_SETS = ("ComParE_2016", "eGeMAPSv02", "emobase")
#: C grids searched by the inner LOSO (log-spaced; linear SVMs on thousands of standardised
#: dimensions want small C).
LR_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
SVM_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
AUDIO_RATE = 16_000


# ------------------------------------------------------------------------------- features


def record_audio(cache_dir: Path, item: SpeechItem) -> np.ndarray:
    """(N,) the record's 16 kHz mono samples, as preprocess wrote them."""
    from wildaffect.data.cache import FeatureCache

    return np.asarray(FeatureCache(cache_dir).read_array(item.path.stem, "audio", mmap=False))


def functionals(items: list[SpeechItem], cache_dir: Path, feature_set: str) -> np.ndarray:
    """(N, D) openSMILE functionals of each record's audio (kept in the cache folder)."""
    import opensmile

    saved = cache_dir / f"functionals_{feature_set}.npz"
    names = np.array([i.path.stem for i in items])
    if saved.is_file():
        stored = np.load(saved)
        if np.array_equal(stored["names"], names):
            return stored["x"]
    smile = opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, feature_set),
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    x = np.stack([smile.process_signal(record_audio(cache_dir, i), AUDIO_RATE).to_numpy()[0]
                  for i in items])  # fmt: skip
    np.savez(saved, names=names, x=np.nan_to_num(x))
    return np.nan_to_num(x)


def pooled_frames(items: list[SpeechItem], cache_dir: Path, encoder: str) -> np.ndarray:
    """(N, 2 D) mean and std over each record's frames of a cached frame encoder."""
    from wildaffect.data.cache import FeatureCache

    cache = FeatureCache(cache_dir)
    rows = []
    for item in items:
        frames = np.asarray(cache.read_features(encoder, item.path.stem), np.float64)  # (T, D)
        rows.append(np.concatenate([frames.mean(0), frames.std(0)]))
    return np.stack(rows)


# ------------------------------------------------------------------------------- protocol


def classifiers() -> dict[str, tuple[Callable[[], Any], str, tuple[float, ...]]]:
    """Name -> (pipeline factory, C parameter name, C grid)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    return {
        "LR": (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
               "logisticregression__C", LR_GRID),
        "linear SVM": (lambda: make_pipeline(StandardScaler(), LinearSVC(max_iter=20000)),
                       "linearsvc__C", SVM_GRID),
    }  # fmt: skip


def inner_splits(groups: np.ndarray, always_train: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Leave-one-speaker-out over the EmoDB speakers in ``groups``; ``always_train`` rows
    (CREMA-D) are in every training part and never tested."""
    index = np.arange(len(groups))
    return [(index[(groups != g) | always_train], index[(groups == g) & ~always_train])
            for g in np.unique(groups[~always_train])]  # fmt: skip


def loso_predictions(
    x: np.ndarray, y: np.ndarray, speakers: np.ndarray, extra: np.ndarray, classifier: str
) -> tuple[np.ndarray, dict[str, float]]:
    """Out-of-fold predictions for the EmoDB rows (``extra`` marks CREMA-D rows, always
    training) and the C chosen per held-out speaker."""
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV

    factory, param, grid = classifiers()[classifier]
    emodb = ~extra
    pred = np.empty(emodb.sum(), dtype=y.dtype)
    chosen = {}
    for speaker in np.unique(speakers[emodb]):
        test = emodb & (speakers == speaker)
        train = ~test
        search = GridSearchCV(
            factory(), {param: list(grid)}, scoring=make_scorer(uar),
            cv=inner_splits(speakers[train], extra[train]), refit=True, n_jobs=1,
        )  # fmt: skip
        search.fit(x[train], y[train])
        pred[(speakers[emodb] == speaker)] = search.predict(x[test])
        chosen[str(speaker)] = float(search.best_params_[param])
    return pred, chosen


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, required=True,
                        help="a cache built by speech_emotion.py (records + frame features)")
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/speech_baselines.json"))
    parser.add_argument("--sets", default=",".join(FUNCTIONAL_SETS),
                        help="openSMILE functional sets ('' = none)")
    parser.add_argument("--frames", default="",
                        help="cached frame encoders to pool (mean + std), e.g. logmel-egemaps")
    parser.add_argument("--no-crema-d", action="store_true", help="EmoDB only in training")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (more than 1 on a shared CPU slows the fits ~10x)")
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads):
        return run(args)


def run(args: argparse.Namespace) -> dict:

    emodb, crema = speech_items(args.data, crema_d=not args.no_crema_d)
    items = emodb + crema
    y = np.array([i.expr for i in items])
    speakers = np.array([i.speaker for i in items])
    extra = np.array([False] * len(emodb) + [True] * len(crema))
    features: dict[str, Callable[[], np.ndarray]] = {}
    for name in filter(None, args.sets.split(",")):
        features[f"{name} functionals"] = lambda n=name: functionals(items, args.cache, n)
    for name in filter(None, args.frames.split(",")):
        features[f"{name} frames mean+std"] = lambda n=name: pooled_frames(items, args.cache, n)

    results: dict[str, dict[str, Any]] = {}
    for feature_name, load in features.items():
        x = load()
        for classifier in classifiers():
            start = time.perf_counter()
            pred, chosen = loso_predictions(x, y, speakers, extra, classifier)
            row = uar_summary(y[~extra], pred, speakers[~extra])
            row.update(dim=int(x.shape[1]), chosen_C=chosen,
                       seconds=round(time.perf_counter() - start, 1))  # fmt: skip
            results[f"{feature_name} + {classifier}"] = row
            print(f"{feature_name} + {classifier}: UAR {row['uar_pooled']:.3f} "
                  f"(C {sorted(set(chosen.values()))}, {row['seconds']} s)", flush=True)
    print_uar_table(results, "features + classifier")
    report = {"crema_d": not args.no_crema_d, "n_utterances": int((~extra).sum()),
              "lr_grid": LR_GRID, "svm_grid": SVM_GRID, "results": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
