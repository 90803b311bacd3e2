"""Per-frame task heads and their conversion to probabilities."""

from __future__ import annotations

import pytest
import torch

from wildaffect.labels import AU_NAMES, EXPR_NAMES, VA_MAX, VA_MIN, VA_NAMES, Task
from wildaffect.models.heads import TaskHeads, n_outputs, to_probabilities


def test_output_sizes_come_from_the_label_spaces():
    assert n_outputs(Task.AU) == len(AU_NAMES) == 12
    assert n_outputs(Task.EXPR) == len(EXPR_NAMES) == 8
    assert n_outputs(Task.VA) == len(VA_NAMES) == 2


@pytest.mark.parametrize("hidden", [None, 16])
def test_shapes_and_ranges(hidden):
    torch.manual_seed(0)
    heads = TaskHeads(10, [Task.AU, Task.EXPR, Task.VA], hidden=hidden, dropout=0.1)
    out = heads(torch.randn(3, 7, 10) * 50)  # large inputs push tanh to its limits
    assert set(out) == {Task.AU, Task.EXPR, Task.VA}
    assert out[Task.AU].shape == (3, 7, 12)
    assert out[Task.EXPR].shape == (3, 7, 8)
    assert out[Task.VA].shape == (3, 7, 2)
    assert out[Task.VA].min() >= VA_MIN and out[Task.VA].max() <= VA_MAX
    assert out[Task.AU].abs().max() > 1  # AU and EXPR are logits, not squashed


def test_probabilities():
    torch.manual_seed(0)
    heads = TaskHeads(10, [Task.AU, Task.EXPR, Task.VA])
    out = heads(torch.randn(2, 5, 10))
    probs = to_probabilities(out)
    torch.testing.assert_close(probs[Task.EXPR].sum(dim=-1), torch.ones(2, 5))
    assert (probs[Task.EXPR] > 0).all()
    torch.testing.assert_close(probs[Task.AU], torch.sigmoid(out[Task.AU]))
    assert ((probs[Task.AU] > 0) & (probs[Task.AU] < 1)).all()
    torch.testing.assert_close(probs[Task.VA], out[Task.VA])
    # argmax of the logits and of the probabilities agree
    assert torch.equal(probs[Task.EXPR].argmax(-1), out[Task.EXPR].argmax(-1))


def test_subset_of_tasks_and_gradients():
    heads = TaskHeads(6, ["AU"], hidden=4)
    h = torch.randn(1, 3, 6, requires_grad=True)
    out = heads(h)
    assert list(out) == [Task.AU]
    out[Task.AU].sum().backward()
    assert h.grad is not None
    assert all(p.grad is not None for p in heads.parameters())


def test_bad_task_lists():
    with pytest.raises(ValueError):
        TaskHeads(6, [])
    with pytest.raises(ValueError):
        TaskHeads(6, [Task.AU, Task.AU])
    with pytest.raises(ValueError):
        TaskHeads(6, ["pose"])
