"""The voice recipe's data steps: speed-perturbed copies and the leave-one-speaker-out tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wildaffect.io.media import read_audio
from wildaffect.labels import TASK_SPECS, Task
from wildaffect.train.voice import (
    VALIDATION,
    speech_items,
    speed_perturbed,
    train_on_validation_too,
    write_fold_tree,
)


def utterances_of(shared_data: Path, n_speakers: int, per_speaker: int) -> list:
    """``per_speaker`` real EmoDB utterances of each of the first ``n_speakers`` speakers."""
    emodb, _ = speech_items(shared_data, crema_d=False)
    speakers = sorted({i.speaker for i in emodb})[:n_speakers]
    return [i for s in speakers for i in [j for j in emodb if j.speaker == s][:per_speaker]]


@pytest.fixture(scope="module")
def two_speakers(shared_data: Path) -> list:
    return utterances_of(shared_data, 2, 3)


def test_a_faster_copy_is_the_utterance_read_faster(two_speakers, tmp_path):
    item = two_speakers[0]
    (fast,) = speed_perturbed([item], (1.1,), tmp_path)
    assert (fast.expr, fast.speaker, fast.emotion) == (item.expr, item.speaker, item.emotion)
    original, copy = read_audio(item.path).samples, read_audio(fast.path).samples
    assert abs(len(copy) - len(original) / 1.1) <= 2
    # Sample k of the copy is the original at time 1.1 k: compare on the original's grid.
    expected = np.interp(np.arange(len(copy)) * 1.1, np.arange(len(original)), original)
    assert np.corrcoef(copy[100:-100], expected[100:-100])[0, 1] > 0.95
    mtime = fast.path.stat().st_mtime_ns
    assert speed_perturbed([item], (1.1,), tmp_path)[0].path.stat().st_mtime_ns == mtime  # reused


def test_only_the_training_speakers_copies_join_the_training_set(two_speakers, tmp_path):
    from wildaffect.preprocess import preprocess_batch

    copies = speed_perturbed(two_speakers, (0.9,), tmp_path / "speed")
    report = preprocess_batch([i.path for i in two_speakers + copies], tmp_path / "cache")
    # (2 speakers are 2 folds: scikit-learn warns that a class has 1 member; harmless here)
    assert report.all_ok
    held = write_fold_tree(two_speakers, [], tmp_path / "cache", tmp_path / "tree", 0, copies)
    task_dir = tmp_path / "tree" / TASK_SPECS[Task.EXPR].challenge_dir
    train = {p.stem for p in (task_dir / "Train_Set").glob("*.txt")}
    validation = {p.stem for p in (task_dir / VALIDATION).glob("*.txt")}
    assert validation == {i.path.stem for i in two_speakers if i.speaker == held}
    trained = [i for i in two_speakers if i.speaker != held]
    assert train == {i.path.stem for i in trained} | {
        c.path.stem for c in copies if c.speaker != held
    }
    copy = next(c for c in copies if c.speaker != held)
    n_rows = len((task_dir / "Train_Set" / f"{copy.path.stem}.txt").read_text().split()) - 1
    assert n_rows == (len(read_audio(copy.path).samples) - 400) // 320 + 1  # its 20 ms frames


def tree_files(tree: Path) -> tuple[set[str], set[str]]:
    """-> (Train_Set stems, Validation_Set stems) of an EXPR tree."""
    task_dir = tree / TASK_SPECS[Task.EXPR].challenge_dir
    return ({p.stem for p in (task_dir / "Train_Set").glob("*.txt")},
            {p.stem for p in (task_dir / VALIDATION).glob("*.txt")})


def test_dropped_training_speakers_leave_only_the_training_set(shared_data, tmp_path):
    from wildaffect.preprocess import preprocess_batch

    items = utterances_of(shared_data, 3, 2)
    assert preprocess_batch([i.path for i in items], tmp_path / "cache").all_ok
    speakers = sorted({i.speaker for i in items})
    held = write_fold_tree(items, [], tmp_path / "cache", tmp_path / "tree", 0,
                           drop_train_speakers=1)
    train, validation = tree_files(tmp_path / "tree")
    kept = speakers[(speakers.index(held) + 2) % 3]  # the one after the dropped one
    assert validation == {i.path.stem for i in items if i.speaker == held}
    assert train == {i.path.stem for i in items if i.speaker == kept}
    with pytest.raises(ValueError, match="drop_train_speakers must be in 0..1"):
        write_fold_tree(items, [], tmp_path / "cache", tmp_path / "t2", 0, drop_train_speakers=2)


def test_training_on_validation_too_puts_every_speaker_in_training(two_speakers, tmp_path):
    from wildaffect.preprocess import preprocess_batch

    assert preprocess_batch([i.path for i in two_speakers], tmp_path / "cache").all_ok
    write_fold_tree(two_speakers, [], tmp_path / "cache", tmp_path / "tree", 0)
    _, validation = tree_files(tmp_path / "tree")
    assert train_on_validation_too(tmp_path / "tree") == len(validation) == 3
    train, still_validation = tree_files(tmp_path / "tree")
    assert train == {i.path.stem for i in two_speakers} and still_validation == validation
