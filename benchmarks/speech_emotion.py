"""The default model's voice: EmoDB leave-one-speaker-out, beside an eGeMAPS + LR baseline.

Steps (the cache is reused by later runs):

1. ``preprocess_batch`` turns the EmoDB utterances (and, unless ``--no-crema-d``, the 12
   CREMA-D clips: 6 audio-only ``.mp3`` of actor 1002, 6 face + voice ``.flv`` of actor 1001)
   into records; audio-only ones are on the 20 ms timeline (T = 99 no-face frames for EmoDB's
   2.0 s clips). ``extract_batch`` writes ``mediapipe-regions`` (zero tokens where there is no
   face) and the recipe's audio features (``--audio``, default ``logmel-egemaps-emobase``;
   frame k = the k-th 20 ms feature) for every record. The
   CREMA-D faces also give ``input_norm`` its visual statistics (the trainer takes them over
   face frames only, and EmoDB has none).
2. Per EmoDB speaker: :func:`wildaffect.data.labelled.write_expression_tree` writes an ABAW EXPR
   tree whose ``Validation_Set`` is that speaker (7 speakers, 7 group folds: one speaker per
   fold, checked); CREMA-D records, a speaker of their own, are added to ``Train_Set``. Then
   ``wildaffect.train.run.train`` fits ``default-offline`` with ``fusion="concat"`` (the audio
   enters the per-frame sequence, the visual input is the learned no-face token), once per
   seed of ``--seeds``, and the *final* weights (no checkpoint picked on the held-out speaker)
   score each held-out utterance by the mean over its frames of P(class), argmax over the 8
   ABAW classes. With several seeds each model is scored alone (the run-to-run spread) and
   as the :class:`~wildaffect.models.ensemble.EnsembleModel` of them (what ships).
3. Baseline, same folds: eGeMAPSv02 functionals (88) of each original wav, standardised,
   logistic regression (scikit-learn defaults, ``max_iter`` raised), fitted per fold.

``--drop-train-speakers K`` trains every fold without the K EmoDB speakers that follow the
held-out one (sorted, wrapping round): the same test utterances scored by models from fewer
speakers, i.e. what one more training speaker is worth.

Score: unweighted average recall over the 7 EmoDB classes (``recall_score(average="macro",
labels=<the 7 classes>)``, boredom = Other), pooled over all 374 out-of-fold predictions
("pooled"), and per speaker with their mean ("mean per speaker").

Usage (from the repo root; ~1 thread of a shared CPU)::

    .venv/bin/python benchmarks/speech_emotion.py --data ../shared/data --cache /tmp/speech \
        --out benchmarks/results/speech_emotion.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from wildaffect.data.speech import SpeechItem
from wildaffect.io.atomic import atomic_write_text
from wildaffect.labels import EXPR_NAMES
from wildaffect.train.voice import (
    EMODB_CLASSES,
    Recipe,
    as_one_model,
    build_cache,
    print_uar_table,
    score_held_out,
    speech_items,
    speed_perturbed,
    train_members,
    uar,
    uar_summary,
    write_fold_tree,
)

# ------------------------------------------------------------------------------- baseline


def egemaps_functionals(items: list[SpeechItem], cache_dir: Path) -> np.ndarray:
    """(N, 88) eGeMAPSv02 functionals of each original file (kept in the cache folder)."""
    import opensmile

    saved = cache_dir / "egemaps_functionals.npz"
    names = np.array([str(i.path) for i in items])
    if saved.is_file():
        stored = np.load(saved)
        if np.array_equal(stored["names"], names):
            return stored["x"]
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    x = np.stack([smile.process_file(str(i.path)).to_numpy()[0] for i in items])
    np.savez(saved, names=names, x=x)
    return x


def baseline_predictions(x: np.ndarray, y: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Out-of-fold class predictions of standardised LR, leave one speaker out."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pred = np.empty_like(y)
    for speaker in np.unique(speakers):
        test = speakers == speaker
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        pred[test] = model.fit(x[~test], y[~test]).predict(x[test])
    return pred


# ------------------------------------------------------------------------------- scores



def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speech_emotion.json"))
    parser.add_argument("--epochs", type=int, default=Recipe.epochs)
    parser.add_argument("--lr", type=float, default=Recipe.lr)
    parser.add_argument("--weight-decay", type=float, default=Recipe.weight_decay)
    parser.add_argument("--no-input-norm", action="store_true")
    parser.add_argument("--balanced", action="store_true", help="class-balanced clip sampler")
    parser.add_argument("--class-weight-power", type=float, default=Recipe.class_weight_power)
    parser.add_argument("--label-smoothing", type=float, default=Recipe.label_smoothing)
    parser.add_argument("--no-crema-d", action="store_true",
                        help="leave out CREMA-D (mp3 voices, flv faces + voices) from training")
    parser.add_argument("--mask", type=str, default=",".join(map(str, Recipe.mask)),
                        help="audio masking: time masks,width,feature masks,width ('' = off)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="model override, e.g. --set d_model=64 (repeatable)")
    parser.add_argument("--audio", default=Recipe.audio,
                        help="offline audio encoder, e.g. logmel-compare (extracted into --cache)")
    parser.add_argument("--speed-perturb", type=str,
                        default=",".join(map(str, Recipe.speed_perturb)),
                        help="training copies at these speeds, e.g. 0.9,1.1 ('' = off)")
    parser.add_argument("--seeds", type=str, default=",".join(map(str, Recipe.seeds)),
                        help="one model per seed, scored alone and as their ensemble, e.g. 0,1,2")
    parser.add_argument("--folds", type=str, default="", help="only these folds, e.g. 0,3")
    parser.add_argument("--drop-train-speakers", type=int, default=0, metavar="K",
                        help="train each fold without the K EmoDB speakers that follow the "
                             "held-out one: the same tests from fewer training speakers")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from wildaffect.data.cache import FeatureCache
    from wildaffect.train.run import parse_override

    torch.set_num_threads(args.threads)
    recipe = Recipe(
        epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
        input_norm=not args.no_input_norm, balanced=args.balanced, class_weight_power=args.class_weight_power,
        label_smoothing=args.label_smoothing, crema_d=not args.no_crema_d,
        model=dict(parse_override(s) for s in args.set),
        mask=tuple(int(v) for v in args.mask.split(",")) if args.mask else None,
        audio=args.audio,
        speed_perturb=tuple(float(f) for f in args.speed_perturb.split(",") if f),
        seeds=tuple(int(v) for v in args.seeds.split(",")),
    )  # fmt: skip
    emodb, extra = speech_items(args.data, recipe.crema_d)
    perturbed = speed_perturbed(emodb, recipe.speed_perturb, args.cache.parent / "speed-perturbed")
    timings = build_cache(emodb + extra + perturbed, args.cache, recipe.audio)
    cache = FeatureCache(args.cache)
    clip_len = max(cache.read_meta(i.path.stem)["n_frames"] for i in emodb + extra + perturbed)
    y = np.array([i.expr for i in emodb])
    speakers = np.array([i.speaker for i in emodb])
    results: dict[str, dict[str, Any]] = {}

    if not args.skip_baseline:
        start = time.perf_counter()
        x = egemaps_functionals(emodb, args.cache)
        results["eGeMAPS functionals + LR"] = uar_summary(y, baseline_predictions(x, y, speakers),
                                                        speakers)  # fmt: skip
        timings["baseline_s"] = time.perf_counter() - start

    folds = [int(f) for f in args.folds.split(",")] if args.folds else range(len(set(speakers)))
    probs: dict[str, np.ndarray] = {}  # the shipped model's: the ensemble when seeds > 1
    seed_probs: dict[int, dict[str, np.ndarray]] = {seed: {} for seed in recipe.seeds}
    start = time.perf_counter()
    for fold in folds:
        tree = args.cache.parent / f"{args.cache.name}-trees-{args.out.stem}" / f"fold{fold}"
        speaker = write_fold_tree(emodb, extra, args.cache, tree, fold, perturbed,
                                  args.drop_train_speakers)
        run_dir = args.cache.parent / f"{args.cache.name}-runs-{args.out.stem}" / f"fold{fold}"
        fold_start = time.perf_counter()
        members = train_members(recipe, tree, args.cache, run_dir, clip_len)
        if len(members) > 1:
            for seed, member in zip(recipe.seeds, members):
                seed_probs[seed].update(score_held_out(member, tree, args.cache, recipe.audio))
        fold_probs = score_held_out(as_one_model(members), tree, args.cache, recipe.audio)
        probs.update(fold_probs)
        done = [i for i in emodb if i.path.stem in fold_probs]
        fold_y = np.array([i.expr for i in done])
        fold_pred = np.array([fold_probs[i.path.stem].argmax() for i in done])
        print(f"fold {fold} speaker {speaker}: UAR {uar(fold_y, fold_pred):.3f} "
              f"({time.perf_counter() - fold_start:.0f} s)", flush=True)
    timings["model_s"] = time.perf_counter() - start
    scored = np.array([i.path.stem in probs for i in emodb])
    kept = [i for i in emodb if i.path.stem in probs]
    for seed, by_seed in seed_probs.items():
        if by_seed:
            results[f"  one member: seed {seed}"] = uar_summary(
                y[scored], np.array([by_seed[i.path.stem].argmax() for i in kept]), speakers[scored]
            )
    pred = np.array([probs[i.path.stem].argmax() for i in kept])
    name = f"default-offline, {recipe.audio}" + (
        f", ensemble of {len(recipe.seeds)} seeds" if len(recipe.seeds) > 1 else "") + (
        f", {args.drop_train_speakers} fewer training speakers" if args.drop_train_speakers else "")
    results[name] = uar_summary(y[scored], pred, speakers[scored])
    if "eGeMAPS functionals + LR" in results and not scored.all():
        base = results["eGeMAPS functionals + LR"]
        base["per_speaker"] = {s: v for s, v in base["per_speaker"].items()
                               if s in results[name]["per_speaker"]}  # fmt: skip
    print_uar_table(results)
    report = {"recipe": asdict(recipe), "clip_len": clip_len, "results": results,
              "drop_train_speakers": args.drop_train_speakers,
              "timings_s": {k: round(v, 1) for k, v in timings.items()},
              "n_utterances": int(scored.sum()), "classes": [EXPR_NAMES[c] for c in EMODB_CLASSES],
              "predictions": {i.path.stem: {"speaker": i.speaker, "label": EXPR_NAMES[i.expr],
                                            "proba": [round(float(p), 5) for p in probs[i.path.stem]]}
                              for i in emodb if i.path.stem in probs}}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
