"""Train the default model's voice companion and write it into the package.

The bundled face model takes no audio; audio-only input (and a video with no face at all) is
predicted by this companion: ``default-offline`` with ``fusion="concat"`` over the recipe's
weight-free audio features, EXPR head, trained by ``wildaffect train`` on the speech in
``../shared/data`` (EmoDB with its 7 emotions mapped onto the ABAW classes, boredom -> Other,
plus the CREMA-D clips) with the recipe that ``benchmarks/speech_emotion.py`` cross-validates
leave-one-speaker-out (both use :mod:`wildaffect.train.voice`: the same recipe and steps).
The shipped model learns from every speaker (the leave-one-speaker-out figure is the estimate
for new speakers; one more training speaker is worth more than a held-out check of it);
``--hold-out`` keeps EmoDB speaker fold 0 out instead and reports its UAR. Nothing is selected
on any speaker: the final weights of one model per recipe seed ship, as an ensemble averaging
their probabilities when there are several.

    python scripts/train_default_voice.py --data ../shared/data --cache runs/cache/speech
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

VOICE_PACKAGE = "default-voice"
OUTPUTS = {"EXPR": "model", "VA": "circumplex"}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "cache" / "speech")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "default-voice")
    parser.add_argument("--loso", type=Path, default=None,
                        help="speech_emotion.py JSON whose LOSO numbers go into the card")
    parser.add_argument("--hold-out", action="store_true",
                        help="keep EmoDB speaker fold 0 out of training and report its UAR")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    from wildaffect.data.cache import FeatureCache
    from wildaffect.models.package import bundled_model_dir, save_package
    from wildaffect.train.voice import (
        Recipe,
        as_one_model,
        build_cache,
        score_held_out,
        speech_items,
        speed_perturbed,
        train_members,
        train_on_validation_too,
        uar,
        write_fold_tree,
    )

    torch.set_num_threads(args.threads)
    recipe = Recipe()
    emodb, extra = speech_items(args.data, recipe.crema_d)
    perturbed = speed_perturbed(emodb, recipe.speed_perturb, args.cache.parent / "speed-perturbed")
    build_cache(emodb + extra + perturbed, args.cache, recipe.audio)
    cache = FeatureCache(args.cache)
    clip_len = max(cache.read_meta(i.path.stem)["n_frames"] for i in emodb + extra + perturbed)
    tree = args.work / "tree"
    speaker = write_fold_tree(emodb, extra, args.cache, tree, 0, perturbed)
    if not args.hold_out:
        train_on_validation_too(tree)
    model = as_one_model(train_members(recipe, tree, args.cache, args.work / "run", clip_len))
    probs = score_held_out(model, tree, args.cache, recipe.audio)
    held = [i for i in emodb if i.path.stem in probs]
    held_uar = uar(np.array([i.expr for i in held]),
                   np.array([probs[i.path.stem].argmax() for i in held]))
    loso = {}
    if args.loso is not None and args.loso.is_file():
        loso = json.loads(args.loso.read_text()).get("results", {})
    card = {
        "name": "wildaffect default (offline, voice companion)",
        "used_for": "audio-only input and videos without any face",
        "architecture": f"default-offline, fusion concat: {recipe.audio} "
                        f"({model.config.d_audio}-d, 20 ms) -> causal AG-SSM -> EXPR head; "
                        "no face input in training"
                        + (f"; an ensemble of {len(recipe.seeds)} such models (seeds "
                           f"{list(recipe.seeds)}), their probabilities averaged"
                           if len(recipe.seeds) > 1 else ""),
        "training_data": {
            "EmoDB": f"{len(emodb)} utterances, 7 speakers (speech-emotion/labels.csv)"
                     + (f", speaker {speaker} held out" if args.hold_out else ", all trained on")
                     + (f", + copies at speeds {list(recipe.speed_perturb)} of the "
                        "training speakers'" if recipe.speed_perturb else ""),
            "CREMA-D": f"{len(extra)} clips (media/crema-d)",
            "mapping": "anger, disgust, fear, happiness, sadness, neutral -> same ABAW class; "
                       "boredom -> Other",
        },
        "recipe": asdict(recipe),
        "held_out_speaker": (
            {"speaker": str(speaker), "uar_7_classes": round(held_uar, 4)} if args.hold_out
            else None
        ),
        "training_fit": (
            None if args.hold_out
            else {"speaker": str(speaker), "uar_7_classes": round(held_uar, 4),
                  "note": "a training speaker: a check that the package works, not an estimate"}
        ),
        "loso": loso,
        "command": "python scripts/train_default_voice.py --data ../shared/data",
    }
    folder = save_package(model, bundled_model_dir(VOICE_PACKAGE), outputs=OUTPUTS, card=card)
    what = "held-out speaker" if args.hold_out else "training speaker (fit, not an estimate)"
    print(f"{what} {speaker}: UAR {held_uar:.3f}; package {folder}")
    return folder


if __name__ == "__main__":
    main()
