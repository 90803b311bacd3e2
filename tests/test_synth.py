"""The synthetic dataset: a valid ABAW tree, a cache whose lengths match, and the evidence
where the module docstring says it is."""

from __future__ import annotations

import numpy as np
import pytest

from wildaffect.data.abaw import ANNOTATION_SUFFIX, parse_annotation, scan_dataset
from wildaffect.data.cache import FeatureCache
from wildaffect.data.synth import (
    AUDIO_ENCODER,
    AUDIO_LED_AUS,
    AUDIO_ONLY_AMPLITUDE,
    CUE_FRAMES,
    VISUAL_ENCODER,
    WEAK_AMPLITUDE,
    au_region_cells,
    audio_lead_frames,
    expression_from_aus,
    make_synthetic_dataset,
)
from wildaffect.labels import AU_NAMES, EXPR_NAMES, SPLITS, TASK_SPECS, Task
from wildaffect.models.config import ModelConfig
from wildaffect.models.layers.temporal import TCN


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), 3, 1, 300, grid=8,
                                  d_visual=16, d_audio=16, seed=1)


def test_tree_parses_and_cache_lengths_match(synth):
    cache = FeatureCache(synth.cache_dir)
    for task in Task:
        index = scan_dataset(synth.root, task)
        assert index.videos(task, SPLITS[0]) == synth.videos[SPLITS[0]]
        assert index.videos(task, SPLITS[1]) == synth.videos[SPLITS[1]]
        for entry in index:
            labels = parse_annotation(entry.path, task)
            np.testing.assert_array_equal(labels.values, synth.labels[(task, entry.video)])
            assert 0 < (~labels.valid).sum() < labels.valid.size // 4  # a few invalid rows
            assert cache.read_features(VISUAL_ENCODER, entry.video).shape == (300, 8, 8, 16)
            assert cache.read_features(AUDIO_ENCODER, entry.video).shape == (300, 16)
            arrays = cache.read_arrays(entry.video)
            assert arrays["frame_times"].shape == arrays["has_face"].shape == (300,)
            np.testing.assert_allclose(np.diff(arrays["frame_times"]), 1 / 30)
            assert 0 < (~arrays["has_face"]).sum() < 60
            assert np.isnan(arrays["landmarks68"][~arrays["has_face"]]).all()
            face = arrays["landmarks68"][arrays["has_face"]]
            assert ((face >= 0) & (face <= 1)).all() and face.std(axis=0).max() > 0


def test_audio_lead_exceeds_the_tcn_receptive_field():
    cfg = ModelConfig()
    assert audio_lead_frames() > TCN(4, cfg.tcn_kernel, cfg.tcn_dilations).receptive_field


def test_visual_evidence_sits_in_the_au_region(synth):
    """Projected on the per-AU direction, patches inside the region separate active from
    inactive frames far better than the whole-grid average does."""
    cache = FeatureCache(synth.cache_dir)
    video = synth.videos[SPLITS[0]][0]
    x = cache.read_features(VISUAL_ENCODER, video).astype(np.float32)  # (T, 8, 8, 16)
    landmarks = cache.read_array(video, "landmarks68")
    face = cache.read_array(video, "has_face")
    aus = synth.labels[(Task.AU, video)]
    cells = au_region_cells(np.nan_to_num(landmarks), 8)  # (T, 12, 64)
    k = AU_NAMES.index("AU1")  # a strong, visual AU
    ok = face & (aus[:, k] >= 0)
    patches = x.reshape(len(x), 64, 16)
    local = (patches * cells[:, k, :, None]).sum(1) / cells[:, k].sum(1, keepdims=True)
    gap = patches.mean(1)

    def separation(feat):  # best single-direction separation: difference of class means
        on, off = feat[ok & (aus[:, k] == 1)], feat[ok & (aus[:, k] == 0)]
        return np.linalg.norm(on.mean(0) - off.mean(0))

    assert separation(local) > 2 * separation(gap)


def test_audio_cue_precedes_onsets(synth):
    cache = FeatureCache(synth.cache_dir)
    for video in synth.videos[SPLITS[0]]:
        audio = cache.read_features(AUDIO_ENCODER, video).astype(np.float32)
        energy = np.linalg.norm(audio, axis=1)
        aus = synth.labels[(Task.AU, video)]  # invalid rows are -1
        for name in AUDIO_LED_AUS:
            column = aus[:, AU_NAMES.index(name)]
            onsets = np.flatnonzero((column[1:] == 1) & (column[:-1] == 0)) + 1
            for onset in onsets:
                start = onset - synth.lead_frames
                if start >= 0:
                    assert energy[start: start + CUE_FRAMES].mean() > energy.mean() + 0.5


def test_expression_rules():
    aus = np.zeros((3, 12), np.int64)
    aus[0, [AU_NAMES.index("AU6"), AU_NAMES.index("AU12")]] = 1
    aus[1, AU_NAMES.index("AU10")] = 1
    np.testing.assert_array_equal(
        expression_from_aus(aus),
        [EXPR_NAMES.index("Happiness"), EXPR_NAMES.index("Disgust"), EXPR_NAMES.index("Neutral")],
    )


def test_audio_only_variant_removes_only_the_audio_led_visual_evidence(synth, tmp_path):
    """Same seed, ``audio_led_amplitude=0``: identical labels and audio; the patch grids lose
    the evidence in the audio-led AUs' regions on their active frames, and every change lies
    along the two audio-led directions (their distractors go too, nothing else changes)."""
    variant = make_synthetic_dataset(tmp_path, 3, 1, 300, grid=8, d_visual=16, d_audio=16,
                                     seed=1, audio_led_amplitude=AUDIO_ONLY_AMPLITUDE)
    assert variant.audio_led_amplitude == AUDIO_ONLY_AMPLITUDE
    assert synth.audio_led_amplitude == WEAK_AMPLITUDE
    base_cache, var_cache = FeatureCache(synth.cache_dir), FeatureCache(variant.cache_dir)
    led = [AU_NAMES.index(name) for name in AUDIO_LED_AUS]
    changes = []
    for video in synth.videos[SPLITS[0]] + synth.videos[SPLITS[1]]:
        for task in Task:
            np.testing.assert_array_equal(variant.labels[(task, video)],
                                          synth.labels[(task, video)])
        np.testing.assert_array_equal(var_cache.read_features(AUDIO_ENCODER, video),
                                      base_cache.read_features(AUDIO_ENCODER, video))
        diff = (base_cache.read_features(VISUAL_ENCODER, video).astype(np.float64)
                - var_cache.read_features(VISUAL_ENCODER, video)).reshape(300, 64, 16)
        changed = np.abs(diff).max(axis=2) > 0  # (T, 64); equal inputs store equal float16
        face = base_cache.read_array(video, "has_face")
        cells = au_region_cells(np.nan_to_num(base_cache.read_array(video, "landmarks68")), 8)
        active = face[:, None] & (synth.labels[(Task.AU, video)][:, led] == 1)  # (T, 2)
        in_region = (cells[:, led] & active[..., None]).any(axis=1)  # (T, 64)
        assert in_region.any() and changed[in_region].all()
        assert not changed[~face].any()
        changes.append(diff[changed])  # (N, 16)
    changes = np.concatenate(changes)
    assert len(changes) > 100
    singular = np.linalg.svd(changes, compute_uv=False)
    # Rank 2 up to float16 storage: the two audio-led directions only.
    assert singular[2] < 0.01 * singular[0]


def test_negative_audio_led_amplitude_is_refused(tmp_path):
    with pytest.raises(ValueError, match="audio_led_amplitude"):
        make_synthetic_dataset(tmp_path, 1, 1, 300, audio_led_amplitude=-0.1)


def test_train_label_aus_masks_only_the_other_aus_training_labels(synth, tmp_path):
    """Same seed, ``train_label_aus=AUDIO_LED_AUS``: the other AUs' TRAINING labels are all
    invalid, the audio-led ones, every validation label, EXPR / VA and the features unchanged
    (the visual AUs' evidence stays as distraction)."""
    variant = make_synthetic_dataset(tmp_path, 3, 1, 300, grid=8, d_visual=16, d_audio=16,
                                     seed=1, train_label_aus=AUDIO_LED_AUS)
    led = [AU_NAMES.index(name) for name in AUDIO_LED_AUS]
    others = [k for k in range(len(AU_NAMES)) if k not in led]
    invalid = TASK_SPECS[Task.AU].invalid
    for video in synth.videos[SPLITS[0]]:
        masked, whole = variant.labels[(Task.AU, video)], synth.labels[(Task.AU, video)]
        assert (masked[:, others] == invalid).all() and (whole[:, others] != invalid).any()
        np.testing.assert_array_equal(masked[:, led], whole[:, led])
        parsed = parse_annotation(variant.root / TASK_SPECS[Task.AU].challenge_dir / SPLITS[0]
                                  / f"{video}{ANNOTATION_SUFFIX}", Task.AU)
        np.testing.assert_array_equal(parsed.values, masked)
    for video in synth.videos[SPLITS[1]]:
        np.testing.assert_array_equal(variant.labels[(Task.AU, video)],
                                      synth.labels[(Task.AU, video)])
    for video in synth.videos[SPLITS[0]] + synth.videos[SPLITS[1]]:
        for task in (Task.EXPR, Task.VA):
            np.testing.assert_array_equal(variant.labels[(task, video)],
                                          synth.labels[(task, video)])
        for encoder in (VISUAL_ENCODER, AUDIO_ENCODER):
            np.testing.assert_array_equal(FeatureCache(variant.cache_dir).read_features(
                encoder, video), FeatureCache(synth.cache_dir).read_features(encoder, video))


def test_unknown_train_label_aus_are_refused(tmp_path):
    with pytest.raises(ValueError, match="train_label_aus"):
        make_synthetic_dataset(tmp_path, 1, 1, 300, train_label_aus=("AU99",))


def test_cli_keeps_only_the_named_aus_training_labels(tmp_path):
    import json

    from typer.testing import CliRunner

    from wildaffect.cli import app
    from wildaffect.errors import WildaffectError

    runner = CliRunner()
    out = tmp_path / "synth"
    args = ["synth", "--out", str(out), "--videos", "4", "--frames", "300", "--grid", "4"]
    result = runner.invoke(app, [*args, "--train-label-aus", "AU12,AU25"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "cache" / "manifest.json").read_text())
    assert manifest["synthetic"]["train_label_aus"] == ["AU12", "AU25"]
    bad = runner.invoke(app, [*args, "--train-label-aus", "AU99"])
    assert isinstance(bad.exception, WildaffectError) and "AU99" in str(bad.exception)
