"""Metrics on hand-made cases with known answers, merging, and Delta_m."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from vmtlib.metrics import (
    NormalsMeter,
    SaliencyMeter,
    SegmentationMeter,
    TaskMeter,
    delta_m,
    make_meters,
    merge_states,
)


def onehot_logits(labels: torch.Tensor, c: int) -> torch.Tensor:
    return F.one_hot(labels.clamp(0, c - 1), c).permute(0, 3, 1, 2).float() * 10


def facing(b: int = 1, h: int = 4, w: int = 4) -> torch.Tensor:
    n = torch.zeros(b, 3, h, w)
    n[:, 2] = 1.0
    return n


def tilted(deg: float, b: int = 1, h: int = 4, w: int = 4) -> torch.Tensor:
    t = math.radians(deg)
    n = torch.zeros(b, 3, h, w)
    n[:, 1] = math.sin(t)
    n[:, 2] = math.cos(t)
    return n


# ---------------------------------------------------------------- segmentation


def test_factory_and_perfect_segmentation():
    m = TaskMeter("semseg")
    assert isinstance(m, SegmentationMeter) and m.num_classes == 21
    target = torch.randint(0, 21, (2, 8, 8))
    target[0, 0] = 255
    m.update(onehot_logits(target, 21), target)
    assert m.compute() == {"mIoU": 100.0}
    with pytest.raises(ValueError, match="depth"):
        TaskMeter("depth")


def test_known_iou_values():
    m = TaskMeter("semseg")
    target = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 1, 1, 1]]])
    m.update(onehot_logits(pred, 21), target)
    # IoU_0 = 1 / 2, IoU_1 = 2 / 3; the 19 classes that never occur are left out
    assert m.compute()["mIoU"] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)
    iou = m.per_class_iou()
    assert iou[:2].tolist() == pytest.approx([0.5, 2 / 3]) and iou[2:].isnan().all()


def test_class_absent_from_one_batch_counts_over_the_split():
    """A class missing from a batch is not an error: the confusion matrix of the split decides."""
    m = TaskMeter("semseg")
    a = torch.tensor([[[0, 0, 0, 0]]])
    b = torch.tensor([[[3, 3, 0, 0]]])
    m.update(onehot_logits(a, 21), a)  # class 3 absent here
    wrong = torch.tensor([[[3, 0, 0, 0]]])
    m.update(onehot_logits(wrong, 21), b)
    # class 0: TP 4 + 2, FP 1, FN 0 -> 6/7; class 3: TP 1, FN 1 -> 1/2
    assert m.compute()["mIoU"] == pytest.approx(100 * (6 / 7 + 1 / 2) / 2)
    # a class predicted but never labelled gets IoU 0 and stays in the mean
    m2 = TaskMeter("semseg")
    m2.update(onehot_logits(torch.tensor([[[0, 5]]]), 21), torch.tensor([[[0, 0]]]))
    assert m2.compute()["mIoU"] == pytest.approx(100 * (1 / 2 + 0) / 2)


def test_human_parts_images_without_person_contribute_nothing():
    m = TaskMeter("human_parts")
    person = torch.tensor([[[0, 1, 2], [3, 4, 5], [6, 6, 0]]])
    none = torch.full((1, 3, 3), 255)
    garbage = torch.randint(0, 7, (1, 3, 3))
    m.update(onehot_logits(torch.cat([person, garbage]), 7), torch.cat([person, none]))
    assert m.compute()["mIoU"] == 100.0
    empty = TaskMeter("human_parts")
    empty.update(onehot_logits(garbage, 7), none)
    assert math.isnan(empty.compute()["mIoU"])


def test_bad_segmentation_target_is_named():
    m = TaskMeter("semseg")
    with pytest.raises(ValueError, match="0..20"):
        m.update(torch.zeros(1, 21, 1, 2), torch.tensor([[[0, 40]]]))
    with pytest.raises(ValueError, match="channel"):
        m.update(torch.zeros(1, 7, 1, 2), torch.tensor([[[0, 1]]]))


# ---------------------------------------------------------------- saliency


def test_perfect_and_empty_saliency():
    m = TaskMeter("sal")
    assert isinstance(m, SaliencyMeter)
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, :2] = 1  # image 1 has no salient pixel at all
    m.update(target[:, None].float() * 20 - 10, target)
    assert m.compute() == {"mIoU": 100.0, "maxF": 100.0, "maxF_beta2_0.3": 100.0}
    # empty label, everything predicted salient: IoU 0; empty prediction on a non-empty label: 0
    bad = TaskMeter("sal")
    bad.update(torch.full((1, 1, 4, 4), 10.0), torch.zeros(1, 4, 4, dtype=torch.long))
    bad.update(torch.full((1, 1, 4, 4), -10.0), torch.ones(1, 4, 4, dtype=torch.long))
    assert bad.compute()["mIoU"] == 0.0


def test_saliency_iou_is_averaged_per_image_and_ignores_255():
    m = TaskMeter("sal")
    target = torch.zeros(2, 2, 2, dtype=torch.long)
    target[:, 0] = 1
    target[1, 1, 1] = 255
    logits = torch.full((2, 1, 2, 2), -10.0)
    logits[0, 0, 0] = 10.0  # image 0 perfect; image 1 predicts nothing
    logits[1, 0, 1, 1] = 10.0  # on the ignored pixel: no effect
    m.update(logits, target)
    assert m.compute()["mIoU"] == pytest.approx(50.0)


def test_saliency_max_f_known_value():
    m = TaskMeter("sal")
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    target[0, 0] = 1
    m.update(torch.full((1, 1, 2, 2), 10.0), target)  # everything salient: P 1/2, R 1
    out = m.compute()
    assert out["mIoU"] == pytest.approx(50.0)
    assert out["maxF"] == pytest.approx(100 * 2 * 0.5 / 1.5)
    assert out["maxF_beta2_0.3"] == pytest.approx(100 * 1.3 * 0.5 / (0.3 * 0.5 + 1))


def test_saliency_max_f_beta2_03_weighs_precision_and_picks_its_own_threshold():
    """Probabilities 0.95, 0.27 (salient) and 0.33, 0.01 (not). At t = 0.2, 0.25 three
    pixels are predicted: P 2/3, R 1; at t >= 0.35 one: P 1, R 1/2. beta^2 = 1 prefers the
    first (F 0.8 against 0.667), beta^2 = 0.3 the second (0.8125 against 0.722)."""
    target = torch.tensor([[[1, 1, 0, 0]]])
    logits = torch.logit(torch.tensor([[[[0.95, 0.27, 0.33, 0.01]]]], dtype=torch.float64))
    m = TaskMeter("sal")
    m.update(logits, target)
    out = m.compute()
    assert out["maxF"] == pytest.approx(80.0)
    assert out["maxF_beta2_0.3"] == pytest.approx(100 * 1.3 * 0.5 / (0.3 + 0.5))


def test_sigmoid_is_applied_exactly_once():
    """sigmoid(-0.05) = 0.488 and sigmoid(-0.3) = 0.426 are split by the 0.45 threshold; after
    a second sigmoid (0.620 and 0.605) no threshold of linspace(0.2, 0.9, 15) splits them."""
    target = torch.tensor([[[1, 1, 0, 0]]])
    logits = torch.tensor([[[[-0.05, -0.05, -0.3, -0.3]]]])
    m = TaskMeter("sal")
    m.update(logits, target)
    assert m.compute()["mIoU"] == pytest.approx(100.0)
    twice = TaskMeter("sal")
    twice.update(torch.logit(torch.sigmoid(torch.sigmoid(logits))), target)
    assert twice.compute()["mIoU"] == pytest.approx(50.0)


# ---------------------------------------------------------------- normals


def test_perfect_normals():
    m = TaskMeter("normals")
    assert isinstance(m, NormalsMeter)
    m.update(facing() * 3.0, facing())  # the prediction is normalised
    out = m.compute()
    assert out["mean"] == 0.0 and out["rmse"] == 0.0 and out["median"] == pytest.approx(0.005)
    assert out["11.25"] == out["22.5"] == out["30"] == 100.0


def test_normals_off_by_a_known_angle():
    m = TaskMeter("normals")
    m.update(tilted(25.0), facing())
    out = m.compute()
    assert out["mean"] == pytest.approx(25.0, abs=1e-4)
    assert out["rmse"] == pytest.approx(25.0, abs=1e-4)
    assert out["median"] == pytest.approx(25.0, abs=0.01)
    assert (out["11.25"], out["22.5"], out["30"]) == (0.0, 0.0, 100.0)


def test_true_rmse_differs_from_mean_and_invalid_pixels_are_skipped():
    m = TaskMeter("normals")
    pred = torch.cat([tilted(10.0, h=2), tilted(40.0, h=2)], dim=2)  # 8 px at 10, 8 at 40
    target = facing(h=4)
    m.update(pred, target)
    junk = tilted(90.0)
    m.update(junk, torch.zeros(1, 3, 4, 4))  # all invalid: nothing counted
    out = m.compute()
    assert out["mean"] == pytest.approx(25.0, abs=1e-4)
    assert out["rmse"] == pytest.approx(math.sqrt((10**2 + 40**2) / 2), abs=1e-4)
    assert out["median"] == pytest.approx(10.0, abs=0.01)  # the lower median of an even count
    assert (out["11.25"], out["22.5"], out["30"]) == (50.0, 50.0, 50.0)


def test_a_zero_prediction_has_no_direction_and_scores_90_degrees():
    m = TaskMeter("normals")
    pred = torch.cat([torch.zeros(1, 3, 2, 4), facing(h=2)], dim=2)  # 8 px zero, 8 px right
    m.update(pred, facing(h=4))
    out = m.compute()
    assert out["mean"] == pytest.approx(45.0, abs=1e-4)
    assert (out["11.25"], out["22.5"], out["30"]) == (50.0, 50.0, 50.0)


def test_empty_normals_meter_is_nan():
    out = TaskMeter("normals").compute()
    assert set(out) == {"mean", "median", "rmse", "11.25", "22.5", "30"}
    assert all(math.isnan(v) for v in out.values())


# ---------------------------------------------------------------- merging


def _feed(meters, k):
    g = torch.Generator().manual_seed(k)
    seg = torch.randint(0, 21, (2, 6, 6), generator=g)
    sal = torch.randint(0, 2, (2, 6, 6), generator=g)
    nrm = F.normalize(torch.randn(2, 3, 6, 6, generator=g), dim=1)
    meters["semseg"].update(torch.randn(2, 21, 6, 6, generator=g), seg)
    meters["sal"].update(torch.randn(2, 1, 6, 6, generator=g), sal)
    meters["normals"].update(torch.randn(2, 3, 6, 6, generator=g), nrm)


def test_merged_meters_equal_one_meter_over_everything():
    tasks = ("semseg", "sal", "normals")
    whole, a, b = make_meters(tasks), make_meters(tasks), make_meters(tasks)
    for k in range(4):
        _feed(whole, k)
        _feed(a if k % 2 else b, k)
    for t in tasks:
        merged = TaskMeter(t).load_state(merge_states([a[t].state(), b[t].state()]))
        assert merged.compute() == pytest.approx(whole[t].compute())
        a[t].merge(b[t])
        assert a[t].compute() == pytest.approx(whole[t].compute())
    with pytest.raises(ValueError, match="merge"):
        a["semseg"].merge(TaskMeter("human_parts"))


def _reduce_worker(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        m = make_meters(("semseg", "sal", "normals"))
        _feed(m, rank)  # each rank its own batches
        for x in m.values():
            x.all_reduce_()
        torch.save({t: x.compute() for t, x in m.items()}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_all_reduce_over_two_ranks_equals_one_meter_over_both(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_reduce_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    whole = make_meters(("semseg", "sal", "normals"))
    _feed(whole, 0)
    _feed(whole, 1)
    for rank in (0, 1):
        reduced = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for t, x in whole.items():
            assert reduced[t] == pytest.approx(x.compute()), (rank, t)


def test_reset_and_state_keys():
    m = TaskMeter("semseg")
    m.update(onehot_logits(torch.zeros(1, 2, 2, dtype=torch.long), 21),
             torch.zeros(1, 2, 2, dtype=torch.long))
    assert set(m.state()) == {"confusion"}
    m.reset()
    assert int(m.state()["confusion"].sum()) == 0
    with pytest.raises(ValueError, match="keys"):
        m.load_state({"wrong": torch.zeros(1)})


# ---------------------------------------------------------------- delta_m


def test_delta_m_known_values():
    ref = {"semseg": 67.21, "human_parts": 61.93, "sal": 62.35, "normals": 17.97}
    assert delta_m(ref) == pytest.approx(0.0)
    assert delta_m({"semseg": 67.21 * 1.1}) == pytest.approx(10.0)
    assert delta_m({"normals": 17.97 * 1.1}) == pytest.approx(-10.0)  # lower is better
    both = {"semseg": 67.21 * 1.1, "normals": 17.97 * 0.8}
    assert delta_m(both) == pytest.approx((10.0 + 20.0) / 2)
    assert delta_m({"sal": 55.0}, reference={"sal": 50.0}) == pytest.approx(10.0)
    assert delta_m({"normals": {"mean": 17.97, "median": 1.0}}) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="depth"):
        delta_m({"depth": 1.0})
    with pytest.raises(KeyError, match="sal"):
        delta_m({"sal": 1.0}, reference={"semseg": 1.0})


def test_a_task_copy_gets_the_meter_of_its_base_task() -> None:
    from vmtlib.metrics import TaskMeter

    meter = TaskMeter("normals#3")
    assert type(meter) is type(TaskMeter("normals")) and meter.task == "normals#3"
