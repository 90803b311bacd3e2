"""Train the bundled default model's expression part and write it as a model package.

One command (from the repo root; ``make default-model`` runs it)::

    .venv/bin/python scripts/train_default_model.py --data ../shared/data --cache CACHE

Steps, each reusing what an earlier run left in ``CACHE``:

1. preprocess the faces-expression photos (MediaPipe landmarks, blendshapes, crops) and
   extract their ``mediapipe-regions`` tokens;
2. import them as an ABAW EXPR tree (:mod:`wildaffect.data.labelled`), identity-grouped:
   fold 0 of 10 is ``Validation_Set``, the other 9 train;
3. ``wildaffect.train.run.train`` with the recipe of :mod:`wildaffect.train.recipes` (fixed
   epoch count; the final weights ship: the validation fold selects nothing, it is a held-out
   check of the shipped weights, reported in the card);
4. ``save_package`` into ``src/wildaffect/assets/models/default`` with EXPR from the model and
   AU / VA derived (:mod:`wildaffect.derived`). The card carries the CV numbers of
   ``benchmarks/faces_expression.py`` (read from its JSON report, ``--cv-report``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHIP_FOLDS = 10  # fold 0 of 10 held out: ~380 photos of identities the model never saw
SHIP_VALIDATION_FOLD = 0
OUTPUTS = {"EXPR": "model", "AU": "blendshapes-facs", "VA": "circumplex"}
DATA_NAME = "faces-expression"
VOICE_MODEL = "default-voice"


def prepare_cache(items, cache_dir: Path, workers: int) -> list[str]:
    """Preprocess + extract what is missing; -> the record name of every item."""
    from wildaffect.data.cache import FeatureCache
    from wildaffect.errors import WildaffectError
    from wildaffect.extract import extract_batch
    from wildaffect.preprocess import preprocess_batch, record_names
    from wildaffect.train.recipes import DEFAULT_MODEL_ENCODER

    paths = [it.media for it in items]
    names = record_names(paths)
    cache = FeatureCache(cache_dir)
    if not all(cache.has_record(n) for n in names):
        report = preprocess_batch(paths, cache_dir, workers=workers, crops="npy")
        if report.failures:
            raise WildaffectError(f"preprocess failed: {report.failures[0].describe_failure()}")
    todo = [n for n in names if not cache.has_features(DEFAULT_MODEL_ENCODER, n)]
    if todo:
        report = extract_batch(cache_dir, visual=DEFAULT_MODEL_ENCODER, audio=None, videos=todo)
        if report.failures:
            raise WildaffectError(f"extract failed for {len(report.failures)} records")
    return names


def cv_summary(path: Path | None) -> dict:
    """The trainer method's CV numbers from the benchmark's JSON report (empty without one)."""
    if path is None:
        return {}
    report = json.loads(path.read_text())
    name, method = next((k, v) for k, v in report["methods"].items() if k.startswith("d."))
    keys = ("macro_f1_mean", "macro_f1_std", "macro_f1_per_fold", "macro_f1_faces_only_mean",
            "per_class_f1", "auc_p_happiness", "auc_p_happiness_faces")
    bar = next(v["macro_f1_mean"] for k, v in report["methods"].items() if k.startswith("a."))
    return {"method": name, "command": report["command"], "folds": report["data"]["folds"],
            "scoring": report["scoring"], "lr_blendshapes_bar": bar,
            **{k: method[k] for k in keys}}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, required=True, help="feature cache (reused)")
    parser.add_argument("--work", type=Path, default=Path("runs/default-model"),
                        help="imported tree and training run")
    parser.add_argument("--out", type=Path, default=Path("src/wildaffect/assets/models/default"))
    parser.add_argument("--cv-report", type=Path, default=None,
                        help="benchmarks/faces_expression.py JSON whose CV numbers go in the card")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="preprocess processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)

    import torch

    from wildaffect.data.labelled import read_faces_expression, write_expression_tree
    from wildaffect.labels import SPLITS
    from wildaffect.models.package import save_package
    from wildaffect.train.recipes import (
        DEFAULT_MODEL_ENCODER,
        DEFAULT_MODEL_PRESET,
        ExprRecipe,
        expr_train_config,
    )
    from wildaffect.train.run import load_model, train

    torch.set_num_threads(args.threads)
    labels_csv = args.data / DATA_NAME / "labels.csv"
    items, dropped = read_faces_expression(labels_csv)
    names = prepare_cache(items, args.cache, args.workers)
    summary = write_expression_tree(items, args.cache, args.work / "tree", folds=SHIP_FOLDS,
                                    validation_fold=SHIP_VALIDATION_FOLD, seed=args.seed,
                                    record_names=names)
    print({split: len(v) for split, v in summary.videos.items()}, "photos per split")
    recipe = ExprRecipe()
    config = expr_train_config(args.work / "tree", args.cache, args.work / "run", recipe,
                               seed=args.seed)
    result = train(config)
    model = load_model(result.final_checkpoint)
    held_out = {k.removeprefix("val/"): round(v, 4) for k, v in result.final_metrics.items()}
    print("held-out fold (final weights):", held_out)
    card = {
        "name": "wildaffect default (offline, face)",
        "task_sources": {
            "EXPR": "trained head (8 ABAW classes)",
            "AU": "MediaPipe blendshapes through a FACS mapping (wildaffect.derived)",
            "VA": "circumplex mapping of the EXPR probabilities (wildaffect.derived)",
        },
        "architecture": f"{DEFAULT_MODEL_PRESET}: HGA over {DEFAULT_MODEL_ENCODER} tokens "
                        "(21 regions + 1 global, 22 x 232) -> causal AG-SSM -> EXPR head; "
                        "visual only (d_audio = 0)",
        "training_data": {
            "name": DATA_NAME, "photos": len(items), "identities": len({i.group for i in items}),
            "dropped_conflicting_labels": dropped, "class_counts": summary.class_counts,
            "no_face": summary.no_face,
            "split": f"identity-grouped StratifiedGroupKFold({SHIP_FOLDS}, seed {args.seed}): "
                     f"fold {SHIP_VALIDATION_FOLD} held out, the rest trained",
            "licence": "muxspace/facial_expressions (Apache-2.0 repository; photos belong to "
                       "third parties, research use)",
        },
        "recipe": {"train_config": config.to_dict() | {"data_dir": None, "cache_dir": None,
                                                       "out_dir": None},
                   "model_overrides": recipe.model, "weights": "final (no selection)"},
        "held_out_fold_final_weights": held_out,
        "cross_validation": {DATA_NAME.split("-")[0]: cv_summary(args.cv_report)},
        "reproduce": "make default-model (scripts/train_default_model.py)",
    }
    # Audio-only input goes to the voice companion (scripts/train_default_voice.py).
    folder = save_package(model, args.out, outputs=OUTPUTS, card=card, voice_model=VOICE_MODEL)
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} ({size / 1e6:.2f} MB); train/validation split: "
          f"{len(summary.videos[SPLITS[0]])} / {len(summary.videos[SPLITS[1]])} photos")
    return folder


if __name__ == "__main__":
    main()
