"""Losses: known values, ignore handling, all-ignored batches, task weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vmtlib.losses import (
    MultiTaskLoss,
    balanced_bce_loss,
    cross_entropy_loss,
    multitask_loss,
    normals_l1_loss,
    task_loss,
)
from vmtlib.tasks import TASKS


def test_cross_entropy_ignores_255_and_matches_torch():
    pred = torch.randn(2, 21, 4, 5)
    target = torch.randint(0, 21, (2, 4, 5))
    target[0, :2] = 255
    expect = F.cross_entropy(pred, target, ignore_index=255)
    assert torch.allclose(cross_entropy_loss(pred, target), expect)


@pytest.mark.parametrize("task", ["semseg", "human_parts", "sal", "normals"])
def test_all_ignored_batch_gives_zero_with_a_graph(task):
    c = TASKS[task].channels
    pred = torch.randn(2, c, 3, 3, requires_grad=True)
    if task == "normals":
        target = torch.zeros(2, 3, 3, 3)
    else:
        target = torch.full((2, 3, 3), 255, dtype=torch.long)
    loss = task_loss(task, pred, target)
    assert loss.item() == 0.0 and not math.isnan(loss.item())
    loss.backward()
    assert pred.grad is not None and torch.equal(pred.grad, torch.zeros_like(pred))


def test_balanced_bce_hand_computed():
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 3.0]]]])  # 1 x 1 x 2 x 2
    target = torch.tensor([[[1, 0], [0, 255]]])
    # valid: 3 pixels, 1 positive, 2 negatives -> w = 2/3 for positives, 1/3 for negatives
    bce = lambda x, y: F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y))  # noqa: E731
    expect = (2 / 3 * bce(2.0, 1.0) + 1 / 3 * (bce(-1.0, 0.0) + bce(0.5, 0.0))) / 3
    assert torch.allclose(balanced_bce_loss(logits, target), expect)


def test_balanced_bce_weights_the_rare_class_up():
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[0, 0, 0] = 1  # 1 positive, 99 negatives
    miss_pos = torch.full((1, 1, 10, 10), -3.0)  # predicts all negative
    miss_neg = miss_pos.clone()
    miss_neg[0, 0, 0, 0] = 3.0
    miss_neg[0, 0, 5, 5] = 3.0  # right positive, one false positive
    assert balanced_bce_loss(miss_pos, target) > balanced_bce_loss(miss_neg, target)


def test_normals_l1_on_unit_vectors_over_valid_pixels():
    target = torch.zeros(1, 3, 2, 2)
    target[0, 0, 0, 0] = 1.0  # one valid pixel (1, 0, 0); the others invalid
    pred = torch.zeros(1, 3, 2, 2)
    pred[0, 2] = 5.0  # (0, 0, 5) -> normalised (0, 0, 1)
    pred[0, :, 1, 1] = torch.tensor([-7.0, 3.0, 1.0])  # an invalid pixel: no effect
    # |(0,0,1) - (1,0,0)|_1 = 2, mean over the 3 elements of the valid pixel
    assert torch.allclose(normals_l1_loss(pred, target), torch.tensor(2 / 3))
    assert normals_l1_loss(target * 4.0, target) == 0  # a scaled perfect prediction


def test_multitask_weights_1_2_5_10():
    torch.manual_seed(0)
    outputs = {t: torch.randn(2, TASKS[t].channels, 4, 4) for t in TASKS}
    batch = {
        "semseg": torch.randint(0, 21, (2, 4, 4)),
        "human_parts": torch.randint(0, 7, (2, 4, 4)),
        "sal": torch.randint(0, 2, (2, 4, 4)),
        "normals": F.normalize(torch.randn(2, 3, 4, 4), dim=1),
    }
    total, per = multitask_loss(outputs, batch)
    weights = {"semseg": 1.0, "human_parts": 2.0, "sal": 5.0, "normals": 10.0}
    assert set(per) == set(TASKS)
    assert torch.allclose(total, sum(weights[t] * per[t] for t in TASKS))
    crit = MultiTaskLoss(["sal", "normals"])
    total2, per2 = crit(outputs, batch)
    assert set(per2) == {"sal", "normals"}
    assert torch.allclose(total2, 5 * per["sal"] + 10 * per["normals"])
    one, _ = multitask_loss(outputs, batch, tasks=["sal"], weights={"sal": 1.0})
    assert torch.allclose(one, per["sal"])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="depth"):
        multitask_loss({"depth": torch.zeros(1, 1, 2, 2)}, {})
    with pytest.raises(KeyError, match="sal"):
        multitask_loss({"sal": torch.zeros(1, 1, 2, 2)}, {})
    with pytest.raises(ValueError, match="21"):
        task_loss("semseg", torch.zeros(1, 20, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="H x W"):
        task_loss("sal", torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 2, dtype=torch.long))


def test_task_copies_use_their_base_task_loss() -> None:
    import torch

    from vmtlib.losses import task_loss

    pred, target = torch.randn(2, 21, 8, 8), torch.randint(0, 21, (2, 8, 8))
    copy, original = task_loss("semseg#2", pred, target), task_loss("semseg", pred, target)
    torch.testing.assert_close(copy, original)
