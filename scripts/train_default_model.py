"""Train the bundled default model (face + voice) and write it as a model package.

One command (from the repo root; ``make default-model`` runs it)::

    .venv/bin/python scripts/train_default_model.py --data ../shared/data --cache CACHE

Steps, each reusing what an earlier run left in ``CACHE``:

1. preprocess the face photos, the EmoDB utterances and the CREMA-D clips (MediaPipe
   landmarks, blendshapes, crops; 20 ms frames for audio-only files) and extract their
   ``mediapipe-regions`` tokens and ``logmel-egemaps`` audio features;
2. write one ABAW EXPR tree (:func:`wildaffect.train.av.write_av_tree`): every utterance and
   talking face trains; the photos are split by identity, fold 0 of 10 is ``Validation_Set``
   (a held-out check of the shipped weights: it selects nothing), the other 9 train;
3. ``wildaffect.train.run.train`` with the audio-visual recipe of
   :mod:`wildaffect.train.recipes` (fixed epoch count, the final weights ship);
4. ``save_package`` into ``src/wildaffect/assets/models/default`` with EXPR from the model and
   AU / VA derived (:mod:`wildaffect.derived`). The card carries the cross-validated numbers
   of ``benchmarks/av_default.py`` (read from its JSON report, ``--cv-report``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHIP_FOLDS = 10  # photo fold 0 of 10 held out: ~370 photos of identities the model never saw
OUTPUTS = {"EXPR": "model", "AU": "blendshapes-facs", "VA": "circumplex"}
#: Audio-only input goes to the voice-only companion (scripts/train_default_voice.py): its
#: leave-one-speaker-out recall beats this model's voice alone (see the model card).
VOICE_MODEL = "default-voice"


def cv_summary(path: Path | None) -> dict:
    """The cross-validated numbers of ``benchmarks/av_default.py``'s JSON (empty without one)."""
    if path is None:
        return {}
    report = json.loads(path.read_text())
    return {key: report[key] for key in ("command", "n_folds", "faces", "speech", "talking_faces")}


def update_card(folder: Path, cv_report: Path | None) -> Path:
    """Rewrite the package's card with the cross-validation report (weights unchanged): the
    CV run and the shipping run are independent and may finish in either order."""
    from wildaffect.models.package import load_package, save_package

    if cv_report is None:
        raise SystemExit("--update-card needs --cv-report")
    model, meta = load_package(folder)
    card = {**meta["card"], "cross_validation": cv_summary(cv_report)}
    return save_package(model, folder, outputs=meta["outputs"], card=card, voice_model=VOICE_MODEL)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (reused)")
    parser.add_argument("--work", type=Path, default=Path("runs/default-model"),
                        help="the training tree and run")
    parser.add_argument("--out", type=Path, default=Path("src/wildaffect/assets/models/default"))
    parser.add_argument("--cv-report", type=Path, default=None,
                        help="benchmarks/av_default.py JSON whose numbers go in the card")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="preprocess processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--update-card", action="store_true",
                        help="no training: put --cv-report's numbers into the package at --out")
    args = parser.parse_args(argv)
    if args.update_card:
        return update_card(args.out, args.cv_report)
    if args.cache is None:
        parser.error("--cache is required to train")

    import lightning as L
    import torch

    from wildaffect.labels import SPLITS
    from wildaffect.models.package import save_package
    from wildaffect.preprocess import record_names
    from wildaffect.train.av import prepare_cache, read_av_data, write_av_tree
    from wildaffect.train.recipes import (
        DEFAULT_AV_AUDIO,
        DEFAULT_MODEL_ENCODER,
        DEFAULT_MODEL_PRESET,
        av_recipe,
        av_train_config,
    )
    from wildaffect.train.run import load_model, train

    torch.set_num_threads(args.threads)
    data = read_av_data(args.data)
    speech = [*data.emodb, *data.crema_audio, *data.crema_av]
    prepare_cache([i.media for i in data.photos] + [i.path for i in speech], args.cache,
                  DEFAULT_MODEL_ENCODER, DEFAULT_AV_AUDIO, args.workers)
    photo_names = record_names([i.media for i in data.photos])
    tree = args.work / "tree"
    splits = write_av_tree(data, args.cache, tree, SHIP_FOLDS, None, args.seed, photo_names)
    print({split: len(v) for split, v in splits.items()}, "records per split")
    recipe = av_recipe()
    config = av_train_config(tree, args.cache, args.work / "run", recipe, seed=args.seed)
    L.seed_everything(args.seed, verbose=False)
    result = train(config)
    model = load_model(result.final_checkpoint)
    held_out = {k.removeprefix("val/"): round(v, 4) for k, v in result.final_metrics.items()}
    print("held-out photos (final weights):", held_out)
    card = {
        "name": "wildaffect default (offline, face + voice)",
        "task_sources": {
            "EXPR": "trained head (8 ABAW classes) over face and voice",
            "AU": "MediaPipe blendshapes through a FACS mapping (wildaffect.derived)",
            "VA": "circumplex mapping of the EXPR probabilities (wildaffect.derived)",
        },
        "architecture": f"{DEFAULT_MODEL_PRESET}: HGA over {DEFAULT_MODEL_ENCODER} tokens "
                        f"(21 regions + 1 global, 22 x 232) and {DEFAULT_AV_AUDIO} audio "
                        "(180-d every 20 ms) concatenated per frame -> causal AG-SSM gated by "
                        "the audio -> EXPR head; a missing face or voice is the model's "
                        "learned no-face token / no-audio embedding",
        "training_data": {
            "faces-expression": f"{len(data.photos)} photos, "
                                f"{len({i.group for i in data.photos})} identities "
                                f"({len(data.dropped)} dropped: conflicting labels)",
            "EmoDB": f"{len(data.emodb)} utterances, {len(data.speakers)} speakers",
            "CREMA-D": f"{len(data.crema_audio)} audio-only clips (actor 1002), "
                       f"{len(data.crema_av)} talking-face clips (actor 1001)",
            "mapping": "EmoDB / CREMA-D emotions -> the same ABAW class; boredom -> Other",
            "split": f"photos: identity-grouped StratifiedGroupKFold({SHIP_FOLDS}, seed "
                     f"{args.seed}), fold 0 held out; every utterance and clip trains",
        },
        "recipe": {"train_config": config.to_dict() | {"data_dir": None, "cache_dir": None,
                                                       "out_dir": None},
                   "weights": "final (no selection)"},
        "held_out_photos_final_weights": held_out,
        "cross_validation": cv_summary(args.cv_report),
        "reproduce": "make default-model (scripts/train_default_model.py)",
    }
    folder = save_package(model, args.out, outputs=OUTPUTS, card=card, voice_model=VOICE_MODEL)
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} ({size / 1e6:.2f} MB); train/validation: "
          f"{len(splits[SPLITS[0]])} / {len(splits[SPLITS[1]])} records")
    return folder


if __name__ == "__main__":
    main()
