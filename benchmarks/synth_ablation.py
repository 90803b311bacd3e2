"""Known-answer comparison on the synthetic dataset (training issue, item 6).

Trains the five Table 1 presets (``wildaffect ablate``'s rows), the plain-Mamba and Transformer
temporal variants, and two TCN controls trained with the full model's loss (ASL), on the
synthetic dataset with tiny widths, once per seed (each seed its own dataset AND its own
training seed). Prints mean +- SD over seeds of the mean F1, of the F1 of the ten visual AUs
and of the audio-led AUs (AU12, AU25, whose audio cue precedes onset by more frames than the
TCN's receptive field), beside what predicting "on" everywhere scores (the no-skill F1 of an
AU with positive rate p is 2p / (1 + p), about 40 here; ASL's down-weighted negatives push a
model that has not learned an AU towards exactly that).

The rows that isolate the audio guidance (same spatial block, fusion, loss and schedule; SWA
is a TrainConfig option, off for every row):

- ``abaw-full``: HGA + asymmetric cross-attention + audio-guided SSM + ASL;
- ``hga-xattn-tcn-asl``: the same with a TCN as the temporal block;
- ``abaw-hga-mamba``: the same with a plain (not audio-guided) bidirectional Mamba;
- ``fm-hga-asl``: ``abaw-fm-hga`` (concat fusion + TCN) with ASL instead of BCE.

Clips must be longer than the audio lead: with clips shorter than ``lead + CUE_FRAMES`` no
training clip holds both a cue and the onset it announces, so no model can learn the link
(the first version of this script used 64-frame clips against a 71-frame lead).
``--audio-led-amplitude 0`` is the variant where the audio-led AUs have no visual evidence,
so only the audio cue predicts their onsets.

``--only-audio-led`` trains on the audio-led AUs' labels only (the other AUs' training labels
marked invalid, their visual evidence still in the features as distraction) and reports those
two AUs at 0.5 and at per-AU thresholds tuned on the validation split (optimistic), beside
"all positive" and an oracle that knows every cue and says "on" for the mean episode length
from cue + lead. Training is deterministic and does not depend on the validation videos (a
re-run gave bitwise-identical weights), and the training videos are drawn first, so
``--val-videos`` changes only the scoring: use 12, with 3 the all-positive F1 alone moves by
+-8 between seeds.

What it showed (2026-12; ``synth_audio_lead.py`` for the block on the audio alone). Every run
below predates commit 3d0e1d7, from which right padding stays out of the bidirectional SSMs'
states: before it, the last, padded training clip of each video (1 clip in 4 at 600 frames)
fed the backward branch 40-200 padding frames first. Re-run before quoting a small difference.

- the default budget (9 training videos of 600 frames, ~24 cue -> onset pairs per audio-led AU,
  6 epochs of batch 2, ~110 steps) is far too small for ANY block to learn the 71-frame delayed
  link: at that budget the audio-led columns measure nothing;
- all 12 AUs trained, ``--audio-led-amplitude 0 --train-videos 48 --epochs 15`` (seed 0): all
  three rows at the all-positive F1 on AU12/AU25 while the visual AUs reach 88-92;
- default synth (weak visual evidence) with ``--only-audio-led`` at 48 x 15 (seed 0): all
  three rows 91-97 F1 on both: the weak visual evidence alone suffices once the audio-led AUs
  have the model to themselves, so no temporal block can show an advantage there;
- audio-only variant with ``--only-audio-led`` at 48 x 15, 3 seeds, 12 validation videos,
  2.5-4.4 min a row on one core: the audio-guided SSM beats all-positive on AU12 on every seed
  (+2, +9, +16 F1 on seeds 0 1 2; 48.5 +- 5.6 at 0.5 vs all-positive 39.4 +- 1.4, TCN 31.9
  +- 6.4, plain Mamba 30.2 +- 3.5; tuned 49.9 +- 4.3 vs 40.3 +- 2.0 and 41.0 +- 2.2) and no
  row learns AU25 on seeds 0-2 (35.9, 36.8, 33.4 vs 38.0; oracle ~74 on both). 60 videos x 20
  epochs (3 seeds, 4-5 min a row): the same picture, abaw-full AU12 46.1 +- 7.7 vs
  all-positive 36.5 +- 1.1 and plain Mamba 33.2 +- 9.6 (TCN 27.9, seed 0 only), AU25 39.5 vs
  39.8 (its first 48 training videos are those of 48 x 15: not an independent check).
  Smaller budgets (seed 0, abaw-full): 36 x 15 at all-positive, 24 x 15 +3 F1 on AU12:
  48 x 15 is the smallest tested budget that shows it.
- why AU12 and not AU25 (issue #5; abaw-full, audio-only, 48 x 15, F1 @0.5 vs that seed's own
  all-positive F1): NOT an AU25 problem. A run learns at most ONE of the two delayed links
  (never both by more than +6 F1), and which one is set by the seed (data x initialisation):
  over seeds 0-6 AU12 clearly (+9 to +21) on 1 2 4 5, AU25 on 6, neither on 0 3 (+2 to +6),
  4 to 1, which a fair coin gives about one time in five. Evidence, one run each (~1.8 min):

  - more seeds, both AUs trained: seed 3 43.1 / 43.3, 4 61.0 / 36.9, 5 50.5 / 37.0,
    6 31.9 / 53.2 (AU12 / AU25; all-positive 37.1 / 41.2, 39.7 / 39.6, 39.8 / 41.7,
    36.3 / 40.9): seed 6 learns AU25 and not AU12;
  - AU25 trained alone (``--train-label-aus AU25``), seeds 0 1 2: 56.7, 66.6, 40.2 vs
    all-positive 36.0, 41.9, 36.1: learned, strongly on two seeds of three;
  - the AU12 and AU25 columns of every annotation file swapped (seeds 0 1 2, a one-off probe):
    the winner follows the data, not the head column, on seeds 0 and 1 (AU12's episodes and
    cue, now in column AU25: 50.8 and 46.0 vs 41.0 and 38.7; the other column at or below
    all-positive); on seed 2 neither column is learned: the initialisation matters too;
  - ``abaw-full-wide`` (d_inner 64, d_state 16 instead of 16, 8), seeds 4 5: AU25 54.7, 58.0
    and AU12 at all-positive (37.1, 36.0 vs 39.7, 39.8): a 4x wider SSM flips the winner and
    still learns one link, so it is not the state size (the next entry: not the number of
    epochs either, but the number of cue -> onset examples).

  The generator (cue counts, onsets, cue strength along each direction, cosine 0.21 between
  the two directions on seed 0) and the model (no AU-specific path: one shared linear AU head;
  AU_REGIONS carry no evidence of the audio-led AUs in this variant) are symmetric in the two
  AUs. So what the audio-guided SSM shows is "it learns A delayed audio -> AU link at this
  budget where the TCN and the plain Mamba (seeds 0-2) learn none", not "AU12's, not AU25's".
- more epochs or more data (issue #5; abaw-full, audio-only, ``--only-audio-led``, F1 @0.5,
  AU12 / AU25 against that run's own all-positive F1): more EPOCHS do not add the second link,
  more DATA does. Seed 2 (48 x 15: AU12 +16, AU25 33.4 vs 36.1): 48 x 30 47.7 / 18.3, 48 x 45
  38.0 / 16.4 (all-positive 38.5 / 36.1); seed 6 (48 x 15: 31.9 / 53.2): 48 x 30 27.2 / 47.4,
  48 x 45 22.1 / 45.4 (36.3 / 40.9). The per-epoch validation F1 (``logs/metrics.csv``) shows
  why: the learned link peaks at epochs 7-16 and then decays (overfitting 48 videos) while the
  other one drifts BELOW all-positive (the model learns to say "off"), never up. 96 x 15 (the
  same 2880 optimiser steps as 48 x 30; the first 48 training videos the same, the
  validation videos not): seed 2 learns BOTH, 54.3 / 63.7 vs 35.7 / 41.9 (+19 / +22); seed 6
  still one, 32.7 / 60.5 vs 33.9 / 39.7. So it is not the number of steps: at 48 videos one
  link is learned and then overfitted; with twice the cue -> onset pairs both links CAN be
  learned, but mostly are not. 96 x 15 on seeds 0 1 3 (abaw-full, 3.3-3.5 min a run): seed 0
  neither, 47.3 / 45.9 = its all-positive 47.3 / 45.9 at every epoch from 1 on (it says "on"
  everywhere); seed 1 AU12 at all-positive (35.5 vs 35.5) and AU25 weakly, 49.8 vs 43.2 (+7,
  peak 52.3 at epoch 6); seed 3 one, AU12 68.5 vs 44.8 (+24), AU25 37.4 vs 39.1. Over seeds
  0-3 and 6 at 96 x 15: both on 1 seed of 5 (2), one on 3 (3 and 6 clearly, 1 weakly), none on
  1 (0); a link clearly learned is stronger than at 48 (+19 to +24 against +9 to +21) and which one
  still moves with the data (seed 1: AU12 at 48 videos, AU25 at 96; seed 3: none, then AU12).
  Controls at 96 x 15, seed 2 (the seed that learned both): TCN 30.5 / 47.7, plain Mamba
  28.4 / 41.6 (all-positive 35.7 / 41.9): neither learns either link (best +6, TCN AU25,
  below all-positive on AU12 from epoch 9 on). Controls at 48 x 15 on the seeds added for issue
  #5 (AU12 / AU25, TCN then plain Mamba, all-positive in brackets): seed 3 33.8 / 45.2, 36.2 /
  43.3 (37.1 / 41.2); 4 32.1 / 41.8, 33.2 / 32.1 (39.7 / 39.6); 5 27.8 / 44.0, 38.6 / 40.9
  (39.8 / 41.7); 6 37.8 / 43.4, 33.0 / 42.0 (36.3 / 40.9): neither learns either link (best
  +4, TCN AU25 seed 3) where abaw-full learns one on seeds 4 5 6 (+11 to +21): the "A link,
  none for the controls" reading now holds on seeds 0-6. Commands: ``--seeds 2 6 --presets
  abaw-full`` with ``--epochs 30``, ``--epochs 45`` or ``--train-videos 96``, ``--seeds 0 1
  3 --presets abaw-full --train-videos 96``, ``--seeds 2 --presets hga-xattn-tcn-asl
  abaw-hga-mamba --train-videos 96`` and ``--seeds 3 4 5 6 --presets hga-xattn-tcn-asl
  abaw-hga-mamba`` (each its own ``--out``; the rest as below).
- ALL 12 AUs trained (no ``--only-audio-led``), audio-only, 96 x 15 (issue #5; abaw-full, F1
  @0.5 AU12 / AU25, that seed's all-positive in brackets, 3.2-3.7 min a run): no link on any
  seed, including the two that learn links with the audio-led labels alone (same data and
  training seed: seed 2 54.3 / 63.7 there, re-run here with the same F1). Seed 0 46.9 / 44.9
  (47.3 / 45.9), 1 32.7 / 43.4 (35.5 / 43.2), 2 34.6 / 41.4 (35.7 / 41.9), 3 44.6 / 39.9
  (44.8 / 39.1); tuned thresholds at all-positive too (best +0.8), visual AUs 96-98. The
  per-epoch validation F1 never rises more than 2 above all-positive on either AU (the
  12-AU mean is at 85-88 by epoch 3), and the final probabilities do not rank the episodes'
  frames at all: frame-level ROC AUC 0.37-0.58 on both AUs, probabilities 0.55-0.59 +- 0.04-0.08
  everywhere (the ASL "on" default). Why, probed on seeds 2 and 3 (one run each):

  - not the width: ``abaw-full-wide`` (4x d_inner, 2x d_state), seed 2: 33.0 / 41.0, at
    all-positive at every epoch;
  - the loss share: the AU12 and AU25 terms of the ASL multiplied by W, the sum still divided
    by the number of valid entries (a one-off probe patching ``AffectModule.task_losses`` from
    outside the repo; the trainer has per-task weights only). W = 6 (each audio-led entry
    weighs what it weighs with the audio-led labels alone, the visual AUs still trained):
    seed 2 35.4 / 44.3 (+2 on AU25, peak +6 at epoch 6), seed 3 48.8 / 40.5 (+4 on AU12):
    weak at best. W = 30 (86% of the loss weight): ONE link on both seeds, seed 2 AU25 59.7
    (+18), AU12 32.2; seed 3 AU25 55.0 (+16), AU12 46.0 (+1), at the price of the visual AUs
    (73.4 and 78.0 instead of 97.5 and 97.4; seed 2's still rising at epoch 15).
    Controls at W = 30: seed 2 TCN 23.9 / 39.2, plain Mamba 38.4 / 40.4 (none); seed 3 TCN
    40.8 / 41.2 (none), plain Mamba 45.6 / 48.2: AU25 +9, the first control above +6, against
    abaw-full's +16 on the same seed.

  So with all 12 AUs trained equally the tiny model fits the ten visual AUs and leaves the
  audio-led ones at "on everywhere"; the delayed link appears only when the audio-led AUs
  dominate the loss, and then at the visual AUs' expense in 15 epochs. A guess, not tested:
  in this block the audio reaches the SSM state only multiplied by the visual stream (gate
  on x, B times x_c), so storing a cue uses the channels the visual AUs shape. Commands:
  ``--seeds N --presets abaw-full --train-videos 96`` without ``--only-audio-led`` (seeds 0-3,
  one ``--out`` each), ``--presets abaw-full-wide`` on seed 2; the W probe ran this script
  under a wrapper with the same arguments.
- two more probes of the all-12-AU setting (issue #5; audio-only, 96 x 15, seeds 2 and 3, F1
  @0.5 then tuned, AU12 / AU25, that seed's all-positive 35.7 / 41.9 and 44.8 / 39.1; after
  the padding fix, 2.9-3.5 min a run):

  - the audio IN the scanned sequence (``abaw-full-concat``: concat fusion, so x carries the
    audio as well as the gate and the selection): seed 2 35.2 / 41.6 (tuned 35.7 / 41.9),
    seed 3 44.3 / 40.2 (44.8 / 41.8): at all-positive, so the guess above (the audio reaches
    the state only through the visual stream) does not explain it;
  - BCE instead of ASL (``abaw-fm-hga-agssm``, Table 1 row 4): the model then says "off"
    (seed 2 12.2 / 13.8, seed 3 41.4 / 30.9) and tuned thresholds give at most +4 (35.6 /
    45.6, 47.9 / 43.0): not learned either.

  - the 30x loss share, now in the repo (``--audio-led-weight 30``: ``TrainConfig.au_loss_weights``)
    and after the padding fix, with the controls (AU12 / AU25, visual AUs): seed 2 abaw-full
    30.4 / 56.8 (+15 on AU25), 74.3; TCN 23.9 / 39.2, 71.1; plain Mamba 39.1 / 41.0, 80.4;
    seed 3 abaw-full 46.0 / 50.9 (+12 on AU25), 79.6; TCN 40.8 / 41.2, 78.0; plain Mamba
    44.7 / 47.4 (+8), 80.6 (4.3-4.9 min a run, two at once): the helper's probe reproduced
    (one link, AU25, on both seeds; the audio-guided SSM above both controls on it) and the
    visual AUs' cost too.

  ``--audio-led-weight 10`` (abaw-full, one run each): seed 2 29.6 / 49.3 (+7 on AU25),
  visual AUs 90.5; seed 3 41.0 / 33.3 (none), 88.3: the weight only trades one for the other.
  Commands: ``--seeds N --presets abaw-full-concat`` and ``--presets abaw-fm-hga-agssm``, or
  ``--audio-led-weight 30 --presets abaw-full hga-xattn-tcn-asl abaw-hga-mamba``, each with
  ``--audio-led-amplitude 0 --train-videos 96 --val-videos 12 --epochs 15`` and its own
  ``--out``.
- TWO STAGES, all 12 AUs trained in the second (``--pretrain-audio-led-epochs 15``; issue #5;
  audio-only, 96 x 15, seeds 0-5, F1 @0.5 AU12 / AU25 with that seed's all-positive in
  brackets, then the visual AUs; ~5-6 min a row for both stages, two rows at once). Stage 1
  trains the audio-led labels alone (the setting above where links are learned), stage 2
  starts from its weights (``TrainConfig.init_from``) with every label:

  - abaw-full learns a link on 5 of 6 seeds and keeps the visual AUs: seed 1 33.6 / 69.4
    (35.5 / 43.2: +26 on AU25), 96.3; seed 2 34.4 / 61.3 (35.7 / 41.9: +19), 94.3; seed 3
    57.6 / 47.2 (44.8 / 39.1: +13 and +8), 92.8; seed 4 42.9 / 62.5 (36.7 / 40.2: +6 and
    +22), 93.5; seed 5 63.1 / 32.8 (42.2 / 37.9: +21), 95.4. Seed 0 fails: stage 1 learns
    nothing (47.4 / 45.9 = all-positive, "on" everywhere) and stage 2 from those weights
    reaches only 59.6 on the visual AUs (still rising at epoch 15), against 98.0 from scratch;
  - the link is learned in stage 1 and survives stage 2 (stage 1 -> final on the learned AU:
    60.6 -> 69.4, 71.4 -> 61.3, 63.5 -> 57.6, 61.7 -> 62.5, 66.9 -> 63.1);
  - TCN: none on any seed (best +2; stage 1 none either), visual AUs 95.4-97.4;
  - plain Mamba: a link on 4 of 6 seeds (AU25 +9, +20, +8, +9 on seeds 0 1 4 5; +3 on AU12
    on seed 3, none on seed 2), weaker than abaw-full's on seeds 1-5, stronger on seed 0
    (+9 where abaw-full has none); visual AUs 95.1-97.1;
  - means over the six seeds, AU12 / AU25: abaw-full 46.5 +- 12.1 / 53.2 +- 13.6, plain
    Mamba 38.0 +- 6.7 / 48.5 +- 9.3, TCN 36.6 +- 4.1 / 34.4 +- 4.6, all-positive 40.4 +- 5.1
    / 41.4 +- 2.9 (oracle 74.2 / 77.9); visual AUs 88.7 +- 14.3 (seed 0), 96.0, 96.6.

  One stage on the same data (same seeds, videos and training seed, all 12 AUs from the
  start, ~2.5 min a row): no row learns either link on any seed (best +1.5 over
  all-positive), visual AUs 95-99: abaw-full 39.4 / 41.2, plain Mamba 39.4 / 40.0, TCN 38.1
  / 36.6 (means). Commands: the run-by-hand command below, and the same without
  ``--pretrain-audio-led-epochs``.

So the claim "the audio-guided SSM beats the TCN and the plain Mamba on the audio-led AUs"
holds in this form: trained on the audio-led labels first and then on all 12 AUs (two stages,
15 + 15 epochs, 96 videos), the audio-guided SSM learns a 71-frame delayed audio -> AU link on
5 of 6 seeds with the visual AUs at 93-96, the TCN on none, the plain Mamba on 4 of 6 and
weaker on 5 of them; each run learns mostly one of the two links, which one by chance of the
seed. It does NOT hold with all 12 AUs trained from the start (no row learns a link, on any
seed), nor at small budgets (48 videos: one link at most, with the audio-led labels alone),
and a run whose first stage learns nothing (seed 0) is worse on the visual AUs than one
stage. Run by hand (5-6 min a row for both stages on one core each; seeds 0-5 made the
table above):

    python benchmarks/synth_ablation.py --out /tmp/synth-lead --seeds 1 2 3 --train-videos 96 \\
        --val-videos 12 --epochs 15 --pretrain-audio-led-epochs 15 --audio-led-amplitude 0 \\
        --presets abaw-full hga-xattn-tcn-asl abaw-hga-mamba

(earlier entries: ``--only-audio-led`` in place of ``--pretrain-audio-led-epochs 15``, with
``--train-videos 48`` or 96; ``--seeds 3 4 5 6 --presets abaw-full``, ``--seeds 4 5 --presets
abaw-full-wide``, ``--train-label-aus AU25``; each with its own ``--out``.)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from wildaffect.data.abaw import parse_annotation, scan_dataset
from wildaffect.data.cache import MANIFEST
from wildaffect.data.synth import (
    AUDIO_LED_AUS,
    CUE_FRAMES,
    MEAN_EPISODE_FRAMES,
    WEAK_AMPLITUDE,
    audio_lead_frames,
    make_synthetic_dataset,
)
from wildaffect.evaluate import METRICS_FILE, THRESHOLDS_FILE, evaluate_run
from wildaffect.io.atomic import atomic_write_text
from wildaffect.labels import AU_NAMES, SPLITS, Task
from wildaffect.models.registry import TABLE1_PRESETS
from wildaffect.train.config import TrainConfig
from wildaffect.train.run import CHECKPOINT_DIR, train

TINY = dict(  # noqa: C408
    d_model=32, d_token=16, d_inner=16, n_layers=1, hga_heads=2, xattn_heads=2, d_state=8,
    dropout=0.0, transformer_heads=2,
)
#: Row name -> (preset, model overrides on top of TINY).
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    **{preset: (preset, {}) for preset, _ in TABLE1_PRESETS},
    "abaw-hga-mamba": ("abaw-hga-mamba", {}),
    "abaw-hga-transformer": ("abaw-hga-transformer", {}),
    "hga-xattn-tcn-asl": ("abaw-full", {"temporal": "tcn"}),
    "fm-hga-asl": ("abaw-fm-hga", {"losses": {"AU": "asl"}}),
    # abaw-full with a 4x wider SSM: whether one delayed link per run is a width limit (issue #5)
    "abaw-full-wide": ("abaw-full", {"d_inner": 64, "d_state": 16}),
    # Audio IN the sequence the SSM scans (concat fusion), not only in its gate and selection:
    # whether the state can then hold which cue was heard (issue #5); with its two controls.
    "abaw-full-concat": ("abaw-full", {"fusion": "concat"}),
    "hga-concat-mamba-asl": ("abaw-hga-mamba", {"fusion": "concat"}),
}
NO_SKILL = "all-positive (no skill)"
ORACLE = "oracle (on from each cue + lead)"
VISUAL_AUS = tuple(au for au in AU_NAMES if au not in AUDIO_LED_AUS)
MINUTES_FILE = "train_minutes.txt"  # a row's training minutes, for a later invocation
PRETRAIN_SUFFIX = "-pretrain"  # run folder of a row's first stage (--pretrain-audio-led-epochs)
TUNED = " tuned"  # suffix of a column scored at thresholds tuned on the validation split
#: Columns: mean F1 over all / the visual AUs, then each audio-led AU at 0.5 and tuned.
COLUMNS = ("mean", "visual", *AUDIO_LED_AUS, *(au + TUNED for au in AUDIO_LED_AUS))
#: With --only-audio-led the visual AUs are not trained: only the audio-led columns mean anything.
AUDIO_LED_COLUMNS = COLUMNS[2:]
STAGE1 = " stage 1"  # suffix of a column scored on the first stage's weights (at 0.5)
#: With --pretrain-audio-led-epochs: the audio-led AUs after the first stage too.
STAGE1_COLUMNS = tuple(au + STAGE1 for au in AUDIO_LED_AUS)


def f1_columns(per_au: dict[str, float], tuned: dict[str, float] | None = None
               ) -> dict[str, float]:
    """Per-AU F1 (percent) at 0.5 and at tuned thresholds -> the table's columns (a reference
    row without thresholds passes ``tuned=None``: the same F1 in both)."""
    tuned = per_au if tuned is None else tuned
    return {"mean": float(np.mean([per_au[au] for au in AU_NAMES])),
            "visual": float(np.mean([per_au[au] for au in VISUAL_AUS])),
            **{au: per_au[au] for au in AUDIO_LED_AUS},
            **{au + TUNED: tuned[au] for au in AUDIO_LED_AUS}}


def validation_labels(data_dir: Path) -> list[np.ndarray]:
    """(T, 12) AU labels of each validation video, -1 where invalid."""
    entries = scan_dataset(data_dir, Task.AU).select(Task.AU, SPLITS[1])
    return [parse_annotation(e.path, Task.AU).values for e in entries]


def all_positive_f1(labels: list[np.ndarray]) -> dict[str, float]:
    """F1 (percent) per AU of predicting "on" on every valid validation frame: 2p / (1 + p)."""
    values = np.concatenate(labels)  # (N, 12)
    result = {}
    for k, au in enumerate(AU_NAMES):
        column = values[:, k]
        p = float((column == 1).sum() / (column >= 0).sum())
        result[au] = 100.0 * 2 * p / (1 + p)
    return result


def cued_onsets(column: np.ndarray, lead: int) -> np.ndarray:
    """Onset frames of a (T,) 0/1/-1 label column that have an audio cue in the video (the
    synth drops a cue that would end before frame 0); an invalid stretch takes the label
    before it, so it neither makes nor hides an onset."""
    filled = pd.Series(np.where(column < 0, np.nan, column)).ffill().fillna(0).to_numpy()
    onsets = np.flatnonzero(np.diff(filled, prepend=0) == 1)
    return onsets[onsets - lead + CUE_FRAMES > 0]


def oracle_f1(labels: list[np.ndarray], lead: int) -> dict[str, float]:
    """F1 (percent) of the audio-led AUs for a predictor that knows each cue and says "on" for
    MEAN_EPISODE_FRAMES frames from cue + lead: what reading the cue perfectly can reach here."""
    result = {}
    for au in AUDIO_LED_AUS:
        k = AU_NAMES.index(au)
        tp = n_pred = n_pos = 0
        for values in labels:
            column = values[:, k]
            pred = np.zeros(len(column), dtype=bool)
            for onset in cued_onsets(column, lead):
                pred[onset: onset + MEAN_EPISODE_FRAMES] = True
            valid, truth = column >= 0, column == 1
            tp += int((pred & truth).sum())
            n_pred += int((pred & valid).sum())
            n_pos += int(truth.sum())
        result[au] = 100.0 * 2 * tp / max(n_pred + n_pos, 1)
    return result


def train_row(base: TrainConfig, row: str, run_dir: Path) -> float:
    """Train one row into ``run_dir`` (resuming a killed run); -> its training minutes (those
    an earlier invocation recorded when it trained the row, NaN if none were)."""
    if (run_dir / "final.ckpt").is_file():
        recorded = run_dir / MINUTES_FILE
        return float(recorded.read_text()) if recorded.is_file() else float("nan")
    preset, overrides = ROWS[row]
    config = replace(base, preset=preset, out_dir=str(run_dir), tasks=("AU",),
                     model_overrides={**base.model_overrides, **overrides})
    last = run_dir / CHECKPOINT_DIR / "last.ckpt"
    start = time.perf_counter()
    train(config, resume=last if last.is_file() else None)
    minutes = (time.perf_counter() - start) / 60  # of this invocation only, after a resume
    atomic_write_text(run_dir / MINUTES_FILE, f"{minutes:.3f}\n")
    return minutes


def evaluate_row(run_dir: Path, base: TrainConfig, tune: bool) -> dict[str, float]:
    """Per-AU F1 (percent) of a trained row's final weights on the validation split, at 0.5
    or at per-AU thresholds tuned there (each written once, then read back)."""
    out = run_dir / ("eval_tuned" if tune else Path("eval") / SPLITS[1])
    if not (out / METRICS_FILE).is_file():
        if not tune:  # at 0.5: no thresholds stored with the run yet
            (run_dir / THRESHOLDS_FILE).unlink(missing_ok=True)
        evaluate_run(run_dir, base.data_dir, base.cache_dir, checkpoint=run_dir / "final.ckpt",
                     tune_thresholds=tune, out_dir=out if tune else None)
    metrics = json.loads((out / METRICS_FILE).read_text())
    return {au: 100.0 * metrics[f"au_f1_{au}"] for au in AU_NAMES}


def run_row(base: TrainConfig, row: str, run_dir: Path, pretrain: TrainConfig | None = None
            ) -> tuple[dict[str, float], dict[str, float], float, dict[str, float]]:
    """Train and evaluate one row at 0.5 and at thresholds tuned on validation; -> per-AU F1
    (percent) at each, the training minutes, and the first stage's F1 at 0.5 (empty without
    one). ``pretrain``: first train the row with this config (the audio-led labels only)
    into ``run_dir``-pretrain, then start the second stage from its weights."""
    minutes, stage1 = 0.0, {}
    if pretrain is not None:
        first = run_dir.with_name(run_dir.name + PRETRAIN_SUFFIX)
        minutes += train_row(pretrain, row, first)
        stage1 = evaluate_row(first, pretrain, tune=False)
        base = replace(base, init_from=str(first))
    minutes += train_row(base, row, run_dir)
    return evaluate_row(run_dir, base, False), evaluate_row(run_dir, base, True), minutes, stage1


def markdown(results: pd.DataFrame, rows: list[str], columns: tuple[str, ...]) -> str:
    """mean +- SD over seeds per row (SD with ddof=1; '-' for one seed)."""
    n_seeds = results["seed"].nunique()
    stats = results.groupby("row")[[*columns, "minutes"]].agg(["mean", "std"])
    names = {"mean": "mean F1 (12 AUs)", "visual": "visual AUs (10)",
             **{au: f"{au} @0.5" for au in AUDIO_LED_AUS},
             **{au + TUNED: f"{au} tuned" for au in AUDIO_LED_AUS},
             **{au + STAGE1: f"{au} after stage 1" for au in AUDIO_LED_AUS}}
    header = "| row | " + " | ".join(names[col] for col in columns) + " | min/run |"
    lines = [f"mean +- SD over {n_seeds} seed(s), F1 %, validation split (tuned: per-AU "
             "thresholds tuned on that same split, optimistic)", "", header,
             "|---|" + "---:|" * (len(columns) + 1)]
    for row in [NO_SKILL, ORACLE, *rows]:
        if row not in stats.index:
            continue
        cells = []
        for col in [*columns, "minutes"]:
            mean, sd = stats.loc[row, (col, "mean")], stats.loc[row, (col, "std")]
            if np.isnan(mean):
                cells.append("-")
                continue
            cells.append(f"{mean:.1f}" + ("" if np.isnan(sd) else f" +- {sd:.1f}"))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def synthetic_data(args: argparse.Namespace, data: Path, seed: int,
                   label_aus: tuple[str, ...]) -> Path:
    """Write (or check that an earlier run wrote the same) synthetic dataset at ``data``."""
    if not data.exists():
        make_synthetic_dataset(data, args.train_videos, args.val_videos, args.frames, grid=8,
                               d_visual=32, d_audio=16, seed=seed,
                               audio_led_amplitude=args.audio_led_amplitude,
                               train_label_aus=tuple(label_aus))
    manifest = json.loads((data / "cache" / MANIFEST).read_text())["synthetic"]
    if manifest.get("audio_led_amplitude", WEAK_AMPLITUDE) != args.audio_led_amplitude:
        raise SystemExit(f"{data} was written with another --audio-led-amplitude")
    if manifest.get("train_label_aus", list(AU_NAMES)) != list(label_aus):
        raise SystemExit(f"{data} was written with the training labels of "
                         f"{manifest.get('train_label_aus')}, not {list(label_aus)}")
    index = scan_dataset(data, Task.AU)
    if [len(index.videos(Task.AU, split)) for split in SPLITS[:2]] != [
        args.train_videos, args.val_videos
    ]:
        raise SystemExit(f"{data} was written with other --train-videos / --val-videos")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--presets", nargs="+", choices=list(ROWS), default=list(ROWS),
                        help="rows to run (default: all)")
    parser.add_argument("--audio-led-amplitude", type=float, default=WEAK_AMPLITUDE,
                        help="visual evidence of the audio-led AUs; 0: audio-only variant")
    parser.add_argument("--only-audio-led", action="store_true",
                        help="train on the audio-led AUs' labels only (the others marked "
                             "invalid in training, their visual evidence kept) and report them")
    parser.add_argument("--train-label-aus", nargs="+", choices=AUDIO_LED_AUS,
                        help="like --only-audio-led, keeping the training labels of these "
                             "audio-led AUs only (e.g. AU25: one AU trained alone)")
    parser.add_argument("--audio-led-weight", type=float, default=1.0, metavar="W",
                        help="AU loss weight of the audio-led AUs' terms (TrainConfig."
                             "au_loss_weights); the other AUs keep 1")
    parser.add_argument("--pretrain-audio-led-epochs", type=int, default=0, metavar="E",
                        help="two stages: each row first trains E epochs on the audio-led AUs' "
                             "labels only, then --epochs on all AUs from those weights "
                             "(TrainConfig.init_from)")
    parser.add_argument("--train-videos", type=int, default=9)
    parser.add_argument("--val-videos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=600, help="frames per video")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--clip-len", type=int, default=256)
    parser.add_argument("--clip-stride", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="AdamW weight decay (0 in every table above)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lead = audio_lead_frames()
    if args.clip_len <= lead + CUE_FRAMES:
        print(f"warning: clips of {args.clip_len} frames cannot hold an audio cue and its onset "
              f"({lead} frames later): the audio-led AUs cannot be learned from the cue")
    if args.train_label_aus:
        label_aus = tuple(au for au in AUDIO_LED_AUS if au in args.train_label_aus)
    else:
        label_aus = AUDIO_LED_AUS if args.only_audio_led else AU_NAMES
    if args.pretrain_audio_led_epochs and label_aus != AU_NAMES:
        parser.error("--pretrain-audio-led-epochs trains on all AUs in its second stage: "
                     "not with --only-audio-led / --train-label-aus")
    columns = COLUMNS if label_aus == AU_NAMES else AUDIO_LED_COLUMNS
    if args.pretrain_audio_led_epochs:
        columns += STAGE1_COLUMNS
    records = []
    for seed in args.seeds:
        data = synthetic_data(args, args.out / f"seed{seed}" / "data", seed, label_aus)
        base = TrainConfig(
            data_dir=str(data), cache_dir=str(data / "cache"), model_overrides=TINY,
            epochs=args.epochs, batch_size=args.batch_size, clip_len=args.clip_len,
            clip_stride=args.clip_stride, warmup_epochs=0.5, lr=3e-3,
            weight_decay=args.weight_decay, progress_bar=False, seed=seed,
            au_loss_weights=(dict.fromkeys(AUDIO_LED_AUS, args.audio_led_weight)
                             if args.audio_led_weight != 1.0 else {}),
        )
        pretrain = None
        if args.pretrain_audio_led_epochs:
            # Same seed, so the same videos and features; only the training labels differ.
            led = synthetic_data(args, args.out / f"seed{seed}" / "data-audio-led", seed,
                                 AUDIO_LED_AUS)
            pretrain = replace(base, data_dir=str(led), cache_dir=str(led / "cache"),
                               epochs=args.pretrain_audio_led_epochs, au_loss_weights={})
        labels = validation_labels(data)
        positive = all_positive_f1(labels)
        records.append({"seed": seed, "row": NO_SKILL, **f1_columns(positive)})
        records.append({"seed": seed, "row": ORACLE, **f1_columns(
            {**{au: float("nan") for au in AU_NAMES}, **oracle_f1(labels, lead)})})
        for row in args.presets:
            default, tuned, minutes, stage1 = run_row(
                base, row, args.out / f"seed{seed}" / "runs" / row, pretrain)
            scores = {**f1_columns(default, tuned),
                      **{au + STAGE1: stage1[au] for au in AUDIO_LED_AUS if stage1}}
            records.append({"seed": seed, "row": row, "minutes": minutes, **scores})
            print(f"seed {seed} {row} ({minutes:.1f} min): " + ", ".join(
                f"{k} {scores[k]:.1f}" for k in columns), flush=True)
    results = pd.DataFrame.from_records(records)
    results["minutes"] = results.get("minutes", np.nan)
    table = markdown(results, args.presets, columns)
    print(table)
    (args.out / "synth_ablation.md").write_text(table)
    (args.out / "synth_ablation.json").write_text(
        json.dumps({"args": {k: str(v) if isinstance(v, Path) else v
                             for k, v in vars(args).items()},
                    "lead_frames": lead, "results": records}, indent=2) + "\n")


if __name__ == "__main__":
    main()
