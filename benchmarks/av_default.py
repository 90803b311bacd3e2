"""The audio-visual default model, cross-validated on faces and voices at once.

One ``default-offline`` model (HGA over ``mediapipe-regions`` tokens, audio ``logmel-egemaps``
concatenated per frame, causal AG-SSM gated by the audio, EXPR head) trained by
``wildaffect.train.run.train`` on photos + speech + talking faces (:mod:`wildaffect.train.av`:
data, folds and scoring; :mod:`wildaffect.train.recipes`: the recipe). Per fold:

- **faces**: the photos of one identity fold (the faces bar's protocol: identity-grouped
  5-fold ``StratifiedGroupKFold``, seed 0; an image without a detected face counts as a
  Neutral prediction; macro-F1 over the 8 classes, mean +- SD over folds);
- **speech**: the EmoDB speakers held out by that fold (1-2 per fold, never heard), UAR over
  EmoDB's 7 classes pooled over all 374 out-of-fold utterances (argmax over the 8 classes);
- **talking faces**: CREMA-D's 6 audio-visual clips (one actor, kept out of every fold)
  scored with face + voice, face only and voice only: accuracy over the 6 clips x folds.

Usage (from the repo root; the cache is built on first use and reused)::

    .venv/bin/python benchmarks/av_default.py --data ../shared/data --cache CACHE \
        --work /tmp/av --out benchmarks/results/av_default.json --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from wildaffect.io.atomic import atomic_write_text
from wildaffect.labels import EXPR_NAMES

NEUTRAL = EXPR_NAMES.index("Neutral")
MODES = {"face+voice": None, "face only": "audio", "voice only": "face"}  # mode -> dropped


def parse_sets(pairs: list[str]) -> dict:
    from wildaffect.train.run import parse_override

    return dict(parse_override(p) for p in pairs)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, required=True, help="feature cache (reused)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/av-default"),
                        help="per-fold trees and training runs")
    parser.add_argument("--out", type=Path, default=None, help="JSON report")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", type=int, nargs="*", default=None,
                        help="run these folds only (a quick look; the summary covers them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="TrainConfig fields over the recipe")
    parser.add_argument("--model-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="model options over the recipe")
    parser.add_argument("--workers", type=int, default=1, help="preprocess processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)

    import lightning as L
    import torch
    from sklearn.metrics import f1_score

    from wildaffect.data.cache import FeatureCache
    from wildaffect.labels import SPLITS
    from wildaffect.preprocess import record_names
    from wildaffect.train.av import (
        prepare_cache,
        read_av_data,
        score_records,
        speaker_fold,
        write_av_clip_tree,
        write_av_tree,
    )
    from wildaffect.train.recipes import (
        DEFAULT_AV_AUDIO,
        DEFAULT_MODEL_ENCODER,
        av_recipe,
        av_train_config,
    )
    from wildaffect.train.run import load_model, train
    from wildaffect.train.voice import uar

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data = read_av_data(args.data)
    media = [i.media for i in data.photos] + [
        i.path for i in (*data.emodb, *data.crema_audio, *data.crema_av)]
    prepare_cache(media, args.cache, DEFAULT_MODEL_ENCODER, DEFAULT_AV_AUDIO, args.workers)
    photo_names = record_names([i.media for i in data.photos])
    cache = FeatureCache(args.cache)
    has_face = {n: bool(cache.read_array(n, "has_face").any()) for n in photo_names}
    recipe = av_recipe().with_overrides(parse_sets(args.train_set), parse_sets(args.model_set))
    clip_tree = write_av_clip_tree(data, args.cache, args.work / "av-clips")
    folds = args.only_folds if args.only_folds else list(range(args.folds))

    photo_label = {n: i.label for n, i in zip(photo_names, data.photos, strict=True)}
    speech_label = {i.path.stem: i.expr for i in data.emodb}
    speech_speaker = {i.path.stem: i.speaker for i in data.emodb}
    av_label = {i.path.stem: i.expr for i in data.crema_av}
    photo_f1, photo_f1_faces, speech_probs = [], [], {}
    av_correct: dict[str, list[bool]] = {m: [] for m in MODES}
    for k in folds:
        tree, run_dir = args.work / f"fold{k}" / "tree", args.work / f"fold{k}" / "run"
        splits = write_av_tree(data, args.cache, tree, args.folds, k, args.seed, photo_names)
        L.seed_everything(args.seed + k, verbose=False)
        fold_start = time.perf_counter()
        config = av_train_config(tree, args.cache, run_dir, recipe, seed=args.seed + k)
        result = train(config)
        model = load_model(result.final_checkpoint)
        probs = score_records(model, tree, args.cache, SPLITS[1], DEFAULT_MODEL_ENCODER,
                              DEFAULT_AV_AUDIO)
        photos = [n for n in splits[SPLITS[1]] if n in photo_label]
        y = np.array([photo_label[n] for n in photos])
        pred = np.array([probs[n].argmax() if has_face[n] else NEUTRAL for n in photos])
        faces = np.array([has_face[n] for n in photos])
        photo_f1.append(_macro_f1(f1_score, y, pred))
        photo_f1_faces.append(_macro_f1(f1_score, y[faces], pred[faces]))
        speech_probs.update({n: p for n, p in probs.items() if n in speech_label})
        for mode, drop in MODES.items():
            scored = score_records(model, clip_tree, args.cache, SPLITS[1],
                                   DEFAULT_MODEL_ENCODER, DEFAULT_AV_AUDIO, drop=drop)
            av_correct[mode] += [bool(p.argmax() == av_label[n]) for n, p in scored.items()]
        held = sorted(s for s, f in speaker_fold(data.speakers, args.folds).items() if f == k)
        fold_speech = [n for n in probs if n in speech_label]
        fold_uar = uar(np.array([speech_label[n] for n in fold_speech]),
                       np.array([probs[n].argmax() for n in fold_speech]))
        print(f"fold {k}: faces macro-F1 {photo_f1[-1]:.3f} (faces only {photo_f1_faces[-1]:.3f},"
              f" {len(photos)} photos); speakers {held}: UAR {fold_uar:.3f}; "
              f"{time.perf_counter() - fold_start:.0f} s", flush=True)

    names = sorted(speech_probs)
    y = np.array([speech_label[n] for n in names])
    pred = np.array([speech_probs[n].argmax() for n in names])
    speakers = np.array([speech_speaker[n] for n in names])
    per_speaker = {str(s): uar(y[speakers == s], pred[speakers == s]) for s in np.unique(speakers)}
    report = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "folds": folds, "n_folds": args.folds, "seed": args.seed,
        "recipe": {"train": recipe.train, "model": recipe.model},
        "faces": {"macro_f1_per_fold": photo_f1, "macro_f1_mean": float(np.mean(photo_f1)),
                  "macro_f1_std": float(np.std(photo_f1)),
                  "macro_f1_faces_only_mean": float(np.mean(photo_f1_faces)),
                  "scoring": "identity-grouped StratifiedGroupKFold; no face -> Neutral; "
                             "f1_score(average='macro', labels=0..7, zero_division=0)"},
        "speech": {"uar_pooled": uar(y, pred), "uar_per_speaker": per_speaker,
                   "uar_mean_per_speaker": float(np.mean(list(per_speaker.values()))),
                   "n_utterances": len(names),
                   "scoring": "held-out EmoDB speakers; mean P over frames, argmax over 8; "
                              "recall_score(average='macro', labels=EmoDB's 7 classes)"},
        "talking_faces": {m: {"accuracy": float(np.mean(v)), "n": len(v)}
                          for m, v in av_correct.items()},
        "seconds": time.perf_counter() - started,
    }
    print_table(report)
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return report


def _macro_f1(f1_score, y: np.ndarray, pred: np.ndarray) -> float:
    return float(f1_score(y, pred, average="macro", labels=list(range(len(EXPR_NAMES))),
                          zero_division=0))


def print_table(report: dict) -> None:
    faces, speech = report["faces"], report["speech"]
    print("\n| what | score |\n|---|---|")
    print(f"| faces macro-F1 (8 classes, mean +- SD over folds {report['folds']}) | "
          f"{faces['macro_f1_mean']:.3f} +- {faces['macro_f1_std']:.3f} |")
    print(f"| faces macro-F1, photos with a face only | {faces['macro_f1_faces_only_mean']:.3f} |")
    print(f"| speech UAR (7 EmoDB classes, pooled over {speech['n_utterances']} utterances) | "
          f"{speech['uar_pooled']:.3f} |")
    print(f"| speech UAR, mean per speaker | {speech['uar_mean_per_speaker']:.3f} |")
    for mode, v in report["talking_faces"].items():
        print(f"| talking faces ({mode}), accuracy over {v['n']} | {v['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
