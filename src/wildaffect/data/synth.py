"""A synthetic ABAW dataset with cached features where the right answer is known.

``make_synthetic_dataset(out, ...)`` writes, under ``out``:

- an ABAW tree in the challenge layout (``AU_Detection_Challenge/``,
  ``EXPR_Recognition_Challenge/``, ``VA_Estimation_Challenge/``, each with ``Train_Set/`` and
  ``Validation_Set/``), a few short stretches of every file marked invalid;
- a :class:`~wildaffect.data.cache.FeatureCache` at ``out/cache`` with one record per video
  (``frame_times`` at :data:`FPS`, ``has_face``, ``landmarks68``) and two feature sets:
  ``synth-grid`` ``(T, grid, grid, d_visual)`` patch grids and ``synth-audio`` ``(T, d_audio)``.

Generative process (per video, all from one seeded generator):

1. **AU episodes.** Each of the 12 AUs alternates off gaps (40-400 frames) and on episodes
   (20-120 frames), independently: about a quarter of the frames are positive for each AU.
2. **Face.** A jittered canonical 68-point face (per-video scale and position, a slow
   per-frame random walk plus per-point noise) in [0, 1] crop coordinates; a few no-face gaps
   (5-20 frames) where ``has_face`` is False, landmarks are NaN and the grid is zero.
3. **Visual evidence is local.** A fixed random direction ``u_k`` per AU is added to the
   patches of AU k's own region (the cells its ``AU{n}_...`` landmarks of
   :data:`~wildaffect.face.regions.AU_REGIONS` fall in on that frame, dilated by HGA's default
   radius, i.e. the region exactly as the default HGA pools it) while the AU
   is active, on top of Gaussian noise and a per-video offset. Distractors put the same
   directions on the same number of cells OUTSIDE the AU's region on random frames, so global
   average pooling sees ``u_k`` without knowing where it came from, while landmark-guided
   pooling (HGA) reads it from the right place.
4. **Audio leads some AUs.** For the audio-led AUs (:data:`AUDIO_LED_AUS`: AU12 and AU25) a
   burst along a fixed audio direction ``w_k`` (``CUE_FRAMES`` long) starts
   ``lead`` frames BEFORE each onset, with ``lead`` greater than the receptive field of the
   presets' TCN (:func:`audio_lead_frames`); their visual evidence is weak
   (:data:`WEAK_AMPLITUDE`), so the audio cue matters and only a model with a long memory
   can use it. The rest of the audio is Gaussian noise. ``audio_led_amplitude`` sets that
   visual amplitude: ``0`` (the "audio-only" variant, :data:`AUDIO_ONLY_AMPLITUDE`) removes
   their visual evidence, so only the audio cue predicts their onsets (and nothing but the
   episode-length prior their offsets).
5. **EXPR and VA follow the AUs** (so multi-task training has a known answer too), frame by
   frame, see :func:`expression_from_aus` and :func:`valence_arousal_from_aus`.

``train_label_aus`` keeps the TRAINING AU labels of those AUs only and marks the others invalid
(their visual evidence stays in the features, as distraction; validation labels stay whole):
training on the audio-led AUs alone (``benchmarks/synth_ablation.py --only-audio-led``) shows
whether a temporal block learns the lead when the visual AUs do not compete for the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wildaffect.data.abaw import ANNOTATION_SUFFIX, format_annotation
from wildaffect.data.cache import FeatureCache
from wildaffect.face.regions import AU_REGIONS, N_LANDMARKS_68
from wildaffect.io.atomic import atomic_write_text
from wildaffect.labels import (
    AU_NAMES,
    EXPR_NAMES,
    SPLITS,
    TASK_SPECS,
    Task,
)

FPS = 30.0
VISUAL_ENCODER = "synth-grid"
AUDIO_ENCODER = "synth-audio"
CACHE_DIR = "cache"
#: AUs whose audio cue precedes their onset and whose visual evidence is weak.
AUDIO_LED_AUS: tuple[str, ...] = ("AU12", "AU25")
#: Amplitude of the visual evidence: normal AUs / audio-led AUs (noise std is 1).
STRONG_AMPLITUDE = 1.0
WEAK_AMPLITUDE = 0.3
#: ``audio_led_amplitude`` of the variant where the audio-led AUs have no visual evidence.
AUDIO_ONLY_AMPLITUDE = 0.0
AUDIO_CUE_AMPLITUDE = 2.0
CUE_FRAMES = 8
#: Episode lengths (frames): on episodes and the off gaps between them.
EPISODE_FRAMES = (20, 120)
#: Mean on-episode length: how long a cue-reading oracle that cannot see offsets says "on".
MEAN_EPISODE_FRAMES = sum(EPISODE_FRAMES) // 2
GAP_FRAMES = (40, 400)
#: Probability, per frame and AU, of a distractor blob outside the AU's region.
DISTRACTOR_RATE = 0.3


def audio_lead_frames() -> int:
    """Frames between an audio cue and its AU onset: beyond the default TCN's receptive field."""
    from wildaffect.models.config import ModelConfig
    from wildaffect.models.layers.temporal import TCN

    cfg = ModelConfig()
    receptive_field = TCN(8, cfg.tcn_kernel, cfg.tcn_dilations).receptive_field
    return receptive_field + 10


@dataclass
class SyntheticDataset:
    """What :func:`make_synthetic_dataset` wrote (labels as ``VideoLabels`` shapes, invalid
    markers kept)."""

    root: Path
    cache_dir: Path
    videos: dict[str, list[str]]  # split -> video names
    n_frames: int
    lead_frames: int
    audio_led_amplitude: float
    labels: dict[tuple[Task, str], np.ndarray] = field(default_factory=dict)  # (task, video)


# --------------------------------------------------------------------------- label process


def au_episodes(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 12) int: alternating off gaps and on episodes per AU, random phase."""
    active = np.zeros((n_frames, len(AU_NAMES)), dtype=np.int64)
    for k in range(len(AU_NAMES)):
        t = -int(rng.integers(0, GAP_FRAMES[1]))  # random phase: may start inside an episode
        while t < n_frames:
            t += int(rng.integers(*GAP_FRAMES))
            duration = int(rng.integers(*EPISODE_FRAMES))
            active[max(t, 0): max(t + duration, 0), k] = 1
            t += duration
    return active


def expression_from_aus(aus: np.ndarray) -> np.ndarray:
    """(T, 12) 0/1 -> (T,) class ids, first matching rule wins (FACS-flavoured prototypes):

    Happiness AU6+AU12; Surprise AU1+AU2+(AU25|AU26); Fear AU1+AU4+AU25; Sadness AU15+(AU1|AU4);
    Anger AU4+(AU7|AU23|AU24); Disgust AU10; Other when 4+ AUs are active; else Neutral.
    """
    a = {name: aus[:, i].astype(bool) for i, name in enumerate(AU_NAMES)}
    rules = [
        ("Happiness", a["AU6"] & a["AU12"]),
        ("Surprise", a["AU1"] & a["AU2"] & (a["AU25"] | a["AU26"])),
        ("Fear", a["AU1"] & a["AU4"] & a["AU25"]),
        ("Sadness", a["AU15"] & (a["AU1"] | a["AU4"])),
        ("Anger", a["AU4"] & (a["AU7"] | a["AU23"] | a["AU24"])),
        ("Disgust", a["AU10"]),
        ("Other", aus.sum(axis=1) >= 4),
    ]
    expr = np.full(aus.shape[0], EXPR_NAMES.index("Neutral"), dtype=np.int64)
    decided = np.zeros(aus.shape[0], dtype=bool)
    for name, match in rules:
        expr[match & ~decided] = EXPR_NAMES.index(name)
        decided |= match
    return expr


def valence_arousal_from_aus(aus: np.ndarray, smooth: int = 15) -> np.ndarray:
    """(T, 12) 0/1 -> (T, 2) in [-1, 1], rounded to 3 decimals:

    valence = tanh(0.9 AU12 + 0.5 AU6 - 0.6 AU15 - 0.5 AU4 - 0.4 AU10),
    arousal = tanh(0.4 (AU1 + AU2 + AU7 + AU25 + AU26) - 0.5), each a moving average over
    ``smooth`` frames of the linear term before the tanh (affect changes slower than AUs).
    """
    a = {name: aus[:, i].astype(np.float64) for i, name in enumerate(AU_NAMES)}
    valence = 0.9 * a["AU12"] + 0.5 * a["AU6"] - 0.6 * a["AU15"] - 0.5 * a["AU4"] - 0.4 * a["AU10"]
    arousal = 0.4 * (a["AU1"] + a["AU2"] + a["AU7"] + a["AU25"] + a["AU26"]) - 0.5
    kernel = np.ones(smooth) / smooth
    va = np.stack(
        [np.convolve(x, kernel, mode="same") for x in (valence, arousal)], axis=1
    )
    return np.round(np.tanh(va), 3).astype(np.float32)


def _invalid_rows(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T,) bool: 1-3 short stretches (3-10 frames) of invalid rows."""
    invalid = np.zeros(n_frames, dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        start = int(rng.integers(0, max(n_frames - 10, 1)))
        invalid[start: start + int(rng.integers(3, 11))] = True
    return invalid


# --------------------------------------------------------------------------- face + features


def canonical_face_68() -> np.ndarray:
    """(68, 2) a frontal iBUG-ordered face in [0, 1] crop coordinates (x right, y down)."""
    pts = np.zeros((N_LANDMARKS_68, 2))
    theta = np.linspace(0, np.pi, 17)  # jaw: subject's right ear (image left) round the chin
    pts[0:17] = np.stack([0.5 - 0.38 * np.cos(theta), 0.40 + 0.52 * np.sin(theta)], 1)
    for start, (x0, x1) in ((17, (0.20, 0.42)), (22, (0.58, 0.80))):  # brows
        x = np.linspace(x0, x1, 5)
        pts[start: start + 5] = np.stack([x, 0.30 - 0.03 * np.sin(np.linspace(0, np.pi, 5))], 1)
    pts[27:31] = np.stack([np.full(4, 0.5), np.linspace(0.38, 0.56, 4)], 1)  # nose bridge
    pts[31:36] = np.stack([np.linspace(0.42, 0.58, 5), np.full(5, 0.62)], 1)  # nostrils

    def ring(n: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        # from the image-left corner, over the top, back along the bottom
        angle = np.pi - np.arange(n) * 2 * np.pi / n
        return np.stack([cx + rx * np.cos(angle), cy - ry * np.sin(angle)], 1)

    pts[36:42] = ring(6, 0.32, 0.40, 0.07, 0.025)  # right eye
    pts[42:48] = ring(6, 0.68, 0.40, 0.07, 0.025)  # left eye
    pts[48:60] = ring(12, 0.50, 0.77, 0.15, 0.06)  # outer lips
    pts[60:68] = ring(8, 0.50, 0.77, 0.10, 0.025)  # inner lips
    return pts


def jittered_landmarks(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 68, 2) float32: per-video scale/shift, slow per-frame drift, per-point noise."""
    face = canonical_face_68()
    scale = rng.uniform(0.9, 1.05)
    face = 0.5 + (face - 0.5) * scale + rng.uniform(-0.03, 0.03, 2)
    drift = np.cumsum(rng.normal(0, 0.002, (n_frames, 2)), axis=0)
    drift = np.clip(drift, -0.04, 0.04)
    points = face[None] + drift[:, None] + rng.normal(0, 0.003, (n_frames, N_LANDMARKS_68, 2))
    return np.clip(points, 0.0, 1.0).astype(np.float32)


def _no_face_mask(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T,) bool has_face: 1-2 gaps of 5-20 frames without a face."""
    has_face = np.ones(n_frames, dtype=bool)
    for _ in range(int(rng.integers(1, 3))):
        start = int(rng.integers(1, max(n_frames - 20, 2)))
        has_face[start: start + int(rng.integers(5, 21))] = False
    return has_face


def au_region_cells(landmarks: np.ndarray, grid: int) -> np.ndarray:
    """(T, 68, 2) -> (T, 12, grid*grid) bool: each AU's region as HGA sees it by default (the
    cells its landmarks fall in, dilated by the default ``hga_radius``)."""
    import torch

    from wildaffect.models.config import ModelConfig
    from wildaffect.models.hga import landmarks_to_region_masks

    regions = dict(AU_REGIONS)
    if [name.split("_")[0] for name in regions] != list(AU_NAMES):
        raise RuntimeError("AU_REGIONS must list one region per AU in AU_NAMES order")
    masks = landmarks_to_region_masks(
        torch.from_numpy(np.ascontiguousarray(landmarks)), (grid, grid), regions,
        radius=ModelConfig().hga_radius,
    )
    return masks.numpy()


def visual_features(
    aus: np.ndarray, landmarks: np.ndarray, has_face: np.ndarray, directions: np.ndarray,
    amplitudes: np.ndarray, grid: int, rng: np.random.Generator,
) -> np.ndarray:
    """-> (T, grid, grid, D) float32: noise + per-video offset + AU evidence in its region
    + distractors outside it; zero where there is no face."""
    n_frames, d_visual = aus.shape[0], directions.shape[1]
    n_cells = grid * grid
    cells = au_region_cells(landmarks, grid)  # (T, 12, HW)
    x = rng.normal(0, 1, (n_frames, n_cells, d_visual)) + rng.normal(0, 0.5, d_visual)
    for k in range(len(AU_NAMES)):
        evidence = amplitudes[k] * directions[k]  # (D,)
        on = (aus[:, k] == 1)[:, None] & cells[:, k]  # (T, HW)
        x += on[..., None] * evidence
        # Distractor: the same direction on as many random cells outside the region.
        frames = np.flatnonzero(rng.random(n_frames) < DISTRACTOR_RATE)
        for t in frames:
            outside = np.flatnonzero(~cells[t, k])
            if outside.size == 0:
                continue
            size = min(int(cells[t, k].sum()), outside.size)
            x[t, rng.choice(outside, size, replace=False)] += evidence
    x[~has_face] = 0.0
    return x.reshape(n_frames, grid, grid, d_visual).astype(np.float32)


def audio_features(
    aus: np.ndarray, directions: np.ndarray, lead: int, rng: np.random.Generator
) -> np.ndarray:
    """-> (T, D) float32: noise + a cue burst ``lead`` frames before each audio-led onset."""
    n_frames = aus.shape[0]
    audio = rng.normal(0, 1, (n_frames, directions.shape[1]))
    for j, name in enumerate(AUDIO_LED_AUS):
        column = aus[:, AU_NAMES.index(name)]
        onsets = np.flatnonzero(np.diff(column, prepend=0) == 1)
        for onset in onsets:
            start = onset - lead
            if start + CUE_FRAMES <= 0:
                continue  # the cue would lie before the video starts
            audio[max(start, 0): start + CUE_FRAMES] += AUDIO_CUE_AMPLITUDE * directions[j]
    return audio.astype(np.float32)


def _unit_directions(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(n, dim) random directions of norm sqrt(dim) (so each coordinate is about +-1)."""
    v = rng.normal(0, 1, (n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True) * np.sqrt(dim)


# --------------------------------------------------------------------------- the dataset


def make_synthetic_dataset(
    out: str | Path,
    n_train_videos: int = 12,
    n_val_videos: int = 4,
    n_frames: int = 900,
    grid: int = 8,
    d_visual: int = 32,
    d_audio: int = 16,
    seed: int = 0,
    audio_led_amplitude: float = WEAK_AMPLITUDE,
    train_label_aus: tuple[str, ...] | None = None,
) -> SyntheticDataset:
    """Write the synthetic ABAW tree and its feature cache under ``out`` (module docstring).

    ``audio_led_amplitude`` is the visual evidence of :data:`AUDIO_LED_AUS` (noise std 1);
    ``train_label_aus``: the AUs whose training labels are kept (None: all). The random draws
    depend on neither, so two datasets of one seed differ only there.
    """
    if n_train_videos < 1 or n_val_videos < 1:
        raise ValueError("need at least one training and one validation video")
    if audio_led_amplitude < 0:
        raise ValueError(f"audio_led_amplitude must be >= 0, got {audio_led_amplitude}")
    lead = audio_lead_frames()
    if n_frames < lead + EPISODE_FRAMES[1]:
        raise ValueError(f"n_frames must be >= {lead + EPISODE_FRAMES[1]} (audio lead + episode)")
    if d_audio < len(AUDIO_LED_AUS):
        raise ValueError(f"d_audio must be >= {len(AUDIO_LED_AUS)}")
    unknown = sorted(set(train_label_aus or ()) - set(AU_NAMES))
    if unknown or train_label_aus == ():
        raise ValueError(f"train_label_aus must name AUs of {', '.join(AU_NAMES)}, "
                         f"got {train_label_aus}")
    unlabelled = [k for k, name in enumerate(AU_NAMES)
                  if train_label_aus is not None and name not in train_label_aus]
    root = Path(out)
    rng = np.random.default_rng(seed)
    visual_dirs = _unit_directions(len(AU_NAMES), d_visual, rng) / np.sqrt(d_visual) * 2.0
    audio_dirs = _unit_directions(len(AUDIO_LED_AUS), d_audio, rng) / np.sqrt(d_audio) * 2.0
    amplitudes = np.array(
        [audio_led_amplitude if n in AUDIO_LED_AUS else STRONG_AMPLITUDE for n in AU_NAMES]
    )
    videos = {
        SPLITS[0]: [f"synth-train-{i:03d}" for i in range(n_train_videos)],
        SPLITS[1]: [f"synth-val-{i:03d}" for i in range(n_val_videos)],
    }
    cache = FeatureCache(root / CACHE_DIR)
    result = SyntheticDataset(root, cache.root, videos, n_frames, lead, audio_led_amplitude)
    for split, names in videos.items():
        for video in names:
            aus = au_episodes(n_frames, rng)
            landmarks = jittered_landmarks(n_frames, rng)
            has_face = _no_face_mask(n_frames, rng)
            grid_features = visual_features(
                aus, landmarks, has_face, visual_dirs, amplitudes, grid, rng
            )
            audio = audio_features(aus, audio_dirs, lead, rng)
            landmarks[~has_face] = np.nan
            cache.write_record(
                video,
                {"source": "synthetic", "fps": FPS, "n_frames": n_frames, "audio_missing": False,
                 "seed": seed},
                {"frame_times": np.arange(n_frames) / FPS, "has_face": has_face,
                 "landmarks68": landmarks},
            )
            cache.write_features(VISUAL_ENCODER, video, grid_features)
            cache.write_features(AUDIO_ENCODER, video, audio)
            clean = {
                Task.AU: aus.astype(np.float32),
                Task.EXPR: expression_from_aus(aus),
                Task.VA: valence_arousal_from_aus(aus),
            }
            for task, values in clean.items():
                values = values.copy()
                values[_invalid_rows(n_frames, rng)] = TASK_SPECS[task].invalid
                if task == Task.AU and split == SPLITS[0]:
                    values[:, unlabelled] = TASK_SPECS[task].invalid
                path = root / TASK_SPECS[task].challenge_dir / split / f"{video}{ANNOTATION_SUFFIX}"
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, format_annotation(task, values))
                result.labels[(task, video)] = values
    cache.write_manifest(
        {"synthetic": {"seed": seed, "lead_frames": lead, "audio_led_aus": list(AUDIO_LED_AUS),
                       "audio_led_amplitude": audio_led_amplitude,
                       "train_label_aus": list(train_label_aus or AU_NAMES),
                       "grid": grid, "d_visual": d_visual, "d_audio": d_audio}}
    )
    return result


__all__ = [
    "AUDIO_ENCODER", "AUDIO_LED_AUS", "AUDIO_ONLY_AMPLITUDE", "VISUAL_ENCODER", "WEAK_AMPLITUDE",
    "SyntheticDataset", "au_episodes", "audio_lead_frames", "expression_from_aus",
    "make_synthetic_dataset", "valence_arousal_from_aus",
]

