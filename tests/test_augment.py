"""SpecAugment-style audio masking: blocks, fill values, and the training-batch callback."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from wildaffect.train.augment import AudioMasking, MaskSpec, mask_audio


def _runs(mask: torch.Tensor) -> int:
    """Number of runs of True in a 1-D bool tensor."""
    padded = torch.cat([torch.tensor([False]), mask])
    return int((padded[1:] & ~padded[:-1]).sum())


def test_time_and_feature_blocks_within_the_widths() -> None:
    audio = torch.randn(64, 50, 40) + 10.0  # never 0 before masking
    spec = MaskSpec(time_masks=2, time_width=5, feature_masks=1, feature_width=7)
    out = mask_audio(audio, spec, generator=torch.Generator().manual_seed(0))
    masked = out == 0
    time_rows = masked.all(dim=2)  # (B, T) whole frames masked
    feature_cols = masked.all(dim=1)  # (B, D) whole dimensions masked
    # Every masked entry lies in a masked frame or a masked dimension, nothing else changed.
    explained = time_rows[:, :, None] | feature_cols[:, None, :]
    assert torch.equal(masked, explained)
    assert torch.equal(out[~masked], audio[~masked])
    for b in range(64):
        assert int(time_rows[b].sum()) <= 10 and _runs(time_rows[b]) <= 2
        assert int(feature_cols[b].sum()) <= 7 and _runs(feature_cols[b]) <= 1
    assert time_rows.any() and feature_cols.any()  # 64 clips: some masks are not empty
    assert not torch.equal(masked[0], masked[1])  # drawn per clip


def test_fill_value_and_no_masks() -> None:
    audio = torch.ones(2, 30, 4)
    fill = torch.tensor([5.0, 6.0, 7.0, 8.0])
    out = mask_audio(audio, MaskSpec(1, 30, 0, 0), fill, torch.Generator().manual_seed(1))
    masked_frames = (out != 1).all(dim=2)
    assert masked_frames.any()
    assert torch.equal(out[masked_frames], fill.expand(int(masked_frames.sum()), 4))
    assert torch.equal(mask_audio(audio, MaskSpec(0, 10, 0, 10)), audio)


def test_callback_masks_training_batches_with_the_model_mean() -> None:
    mean = torch.full((8,), 3.0)
    module = SimpleNamespace(model=SimpleNamespace(audio_mean=mean))
    callback = AudioMasking(MaskSpec(2, 20, 2, 4), seed=0)
    batch = {"audio": torch.randn(4, 40, 8), "visual": torch.zeros(4, 40, 2)}
    before = batch["audio"].clone()
    callback.on_train_batch_start(None, module, batch, 0)
    changed = batch["audio"] != before
    assert changed.any() and (batch["audio"][changed] == 3.0).all()
    no_audio = {"visual": torch.zeros(1, 2, 2)}
    callback.on_train_batch_start(None, module, no_audio, 0)  # a visual-only batch: untouched
    assert set(no_audio) == {"visual"}
