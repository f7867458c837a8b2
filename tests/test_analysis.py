"""vmtlib.analysis: gradient conflicts (Eq. 7-8), FLOPs versus tasks, results files."""

import json
import math
from pathlib import Path

import pytest
import torch

from vmtlib import ALL_TASKS, METHODS, build_model
from vmtlib.analysis import (
    GradientConflictRecorder,
    ablation_settings,
    conflict_summary,
    copies_loss,
    cosine_matrix,
    cost_markdown,
    cost_table,
    decoder_flops,
    forward_flops,
    is_task_indexed,
    iter_results,
    load_ablation,
    model_cost,
    pairwise_cosines,
    reference_from_compare,
    shared_parameters,
    task_gradients,
    task_set,
    tradeoff_points,
    write_json_atomic,
)
from vmtlib.train import TrainConfig, Trainer

NANO = dict(backbone="swin_nano", img_size=64)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP threads spin against
    the other processes and tiny models run up to 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_losses(method: str, tasks=ALL_TASKS, **kw):
    """A swin_nano model at 64 px in eval mode (no dropout), its per-task losses on a
    fixed batch, with the decoders' predictions made non-trivial."""
    model = build_model(method, tasks=tasks, **NANO, **kw).eval()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 64, 64, generator=g)
    batch = {
        "semseg": torch.randint(0, 21, (2, 64, 64), generator=g),
        "human_parts": torch.randint(0, 7, (2, 64, 64), generator=g),
        "sal": torch.randint(0, 2, (2, 64, 64), generator=g),
        "normals": torch.nn.functional.normalize(torch.randn(2, 3, 64, 64, generator=g), dim=1),
    }
    for t in tasks:
        batch[t] = batch[t.partition("#")[0]]
    _, losses = copies_loss(model(images), batch)
    return model, losses


# ----------------------------------------------------------------------------- Eq. 8


def test_cosine_of_a_gradient_with_itself_is_one() -> None:
    model, losses = tiny_losses("vmt_adapter")
    grads = task_gradients(model, losses)
    cos, tasks = cosine_matrix(grads)
    assert tasks == ALL_TASKS and cos.shape == (4, 4)
    assert torch.allclose(cos.diagonal(), torch.ones(4, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(cos, cos.T)
    assert (cos.abs() <= 1).all()


def test_identical_losses_give_cosine_one_and_opposite_minus_one() -> None:
    model, losses = tiny_losses("adapter_shared")
    loss = losses["semseg"]
    grads = task_gradients(model, {"a": loss, "b": loss, "c": -loss, "d": 3.0 * loss})
    cos, _ = cosine_matrix(grads)
    assert cos[0, 1].item() == pytest.approx(1.0, abs=1e-9)
    assert cos[0, 2].item() == pytest.approx(-1.0, abs=1e-9)
    assert cos[0, 3].item() == pytest.approx(1.0, abs=1e-9)  # scale-free


def test_a_task_copy_with_identical_decoder_has_cosine_one() -> None:
    """Two tasks that are the same task (semseg and semseg#2, same decoder weights,
    same labels) give identical losses, hence cos phi = 1 on theta_sh."""
    model = build_model("vmt_adapter", tasks=("semseg", "semseg#2", "sal"), **NANO)
    model.decoders["semseg#2"].load_state_dict(model.decoders["semseg"].state_dict())
    model.eval()
    g = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 64, 64, generator=g)
    seg = torch.randint(0, 21, (2, 64, 64), generator=g)
    batch = {"semseg": seg, "semseg#2": seg, "sal": torch.randint(0, 2, (2, 64, 64), generator=g)}
    _, losses = copies_loss(model(images), batch)
    assert losses["semseg"].item() == losses["semseg#2"].item()
    cos, tasks = cosine_matrix(task_gradients(model, losses))
    assert tasks == ("semseg", "semseg#2", "sal")
    assert cos[0, 1].item() == pytest.approx(1.0, abs=1e-6)
    assert cos[0, 2].item() < 1 - 1e-3


def test_zero_gradient_has_undefined_cosine() -> None:
    cos, _ = cosine_matrix({"a": torch.zeros(5), "b": torch.ones(5)})
    assert math.isnan(cos[0, 1]) and cos[1, 1].item() == pytest.approx(1.0)
    summary = conflict_summary([float(cos[0, 1]), 0.5, -0.5, 0.25])
    assert summary["undefined"] == 1 and summary["n"] == 3
    assert summary["P(cos>0)"] == pytest.approx(2 / 3)
    assert summary["P(cos<0)"] == pytest.approx(1 / 3)
    assert summary["mean"] == pytest.approx(0.25 / 3)


def test_pairwise_and_summary_per_pair() -> None:
    cos = torch.tensor([[1.0, 0.5, -0.2], [0.5, 1.0, 0.1], [-0.2, 0.1, 1.0]])
    pairs = pairwise_cosines(cos, ("a", "b", "c"))
    assert pairs == pytest.approx({"a|b": 0.5, "a|c": -0.2, "b|c": 0.1})
    s = conflict_summary([{"cos": pairs}, {"cos": {"a|b": -0.5, "a|c": 0.2, "b|c": 0.3}}])
    assert s["n"] == 6 and s["P(cos>0)"] == pytest.approx(4 / 6)
    assert s["pairs"]["a|b"] == {"n": 2, "P(cos>0)": 0.5, "P(cos<0)": 0.5, "mean": 0.0}


# ----------------------------------------------------------------------------- theta_sh


def test_shared_parameters_per_method() -> None:
    with torch.device("meta"):
        vmt = build_model("vmt_adapter", **NANO)
        shared_adapter = build_model("adapter_shared", **NANO)
        multiple = build_model("adapter", **NANO)
        full = build_model("multi_task_full", **NANO)
    names = set(shared_parameters(vmt))
    assert names and all(".projection." in n or n.endswith(".gate") for n in names)
    assert not any(n.endswith((".alpha", ".gamma")) for n in names)  # task-specific (Eq. 4)
    projections = set(shared_parameters(vmt, exclude=(r"\.gate$",)))
    assert projections == {n for n in names if ".projection." in n}
    adapter_params = {f"encoder.{n}" for n, p in shared_adapter.encoder.named_parameters()
                      if p.requires_grad}
    assert set(shared_parameters(shared_adapter)) == adapter_params
    assert shared_parameters(multiple) == {}  # one copy per task: nothing shared (O(T))
    assert len(shared_parameters(full)) == sum(1 for p in full.encoder.parameters())


@pytest.mark.parametrize("method", list(METHODS))
def test_task_indexed_tensors_are_exactly_those_whose_first_dimension_is_t(method) -> None:
    """A tensor of one row per task is recognised by name; built for 3 and 4 tasks,
    exactly the tensors whose first dimension follows T must be the recognised ones."""
    with torch.device("meta"):
        four, three = (dict(build_model(method, tasks=task_set(t), **NANO)
                            .encoder.named_parameters()) for t in (4, 3))
    follows_t = {n for n, p in four.items() if p.requires_grad and p.dim() and p.shape[0] == 4
                 and n in three and three[n].shape[0] == 3}
    recognised = {n for n, p in four.items() if p.requires_grad and is_task_indexed(n, p, 4)
                  and "tasks." not in n}  # MTLoRA's per-task module list: by its name
    assert recognised == follows_t


def test_compacters_rules_are_shared_by_every_task() -> None:
    with torch.device("meta"):
        compacter = build_model("compacter", **NANO)  # rules: (n, n, n) with n = 4 = T
    assert "encoder.rules" in shared_parameters(compacter)


def test_shared_parameters_from_the_losses_graph_match_the_probe() -> None:
    model, losses = tiny_losses("vmt_adapter_lite")
    assert list(shared_parameters(model, losses)) == list(shared_parameters(model))


def test_o_t_method_has_no_gradient_to_compare() -> None:
    model, losses = tiny_losses("adapter", tasks=("semseg", "sal"))
    with pytest.raises(ValueError, match="no shared parameter"):
        task_gradients(model, losses)


# ----------------------------------------------------------------------------- recorder


def test_recorder_collects_every_kth_step(tmp_path: Path) -> None:
    rec = GradientConflictRecorder(every=2, subsets={"projections": r"\.projection\."})
    cfg = TrainConfig(method="vmt_adapter", backbone="swin_nano", pretrained=False, img_size=64,
                      batch_size=2, train_size=16, val_size=2, steps=4, progress=False,
                      out=str(tmp_path))
    Trainer(cfg, step_hooks=[rec]).fit()
    assert [r["step"] for r in rec.records] == [0, 2]
    for r in rec.records:
        assert len(r["cos"]) == 6 and len(r["subsets"]["projections"]) == 6
        assert set(r["norms"]) == set(ALL_TASKS)
    assert rec.seconds > 0 and rec.num_shared > 0
    assert len(rec.cosines()) == 12
    summary = conflict_summary(rec.records)
    assert summary["n"] + summary["undefined"] == 12 and len(summary["pairs"]) == 6
    json.dumps(rec.records)  # JSON-ready


# ----------------------------------------------------------------------------- FLOPs


def test_task_set_copies_beyond_four() -> None:
    assert task_set(4) == ALL_TASKS
    assert task_set(6)[4:] == ("semseg#2", "human_parts#2")
    assert len(set(task_set(8))) == 8


def test_decoders_only_grows_only_by_the_decoders_share() -> None:
    """FLOPs(T) - FLOPs(1) == the FLOPs of the T - 1 extra decoders, counted alone."""
    one = forward_flops("decoders_only", task_set(1), **NANO)
    for n in (2, 4, 6):
        extra = sum(decoder_flops(t, **NANO) for t in task_set(n)[1:])
        assert forward_flops("decoders_only", task_set(n), **NANO) - one == extra


def test_shared_methods_grow_like_decoders_and_individual_ones_linearly() -> None:
    rows = cost_table(["decoders_only", "vmt_adapter", "adapter", "single_task_full"],
                      task_counts=(1, 4), **NANO)
    g = {(r["method"], r["T"]): r for r in rows}
    dec = [decoder_flops(t, **NANO) / 1e9 for t in task_set(4)]
    for m in ("decoders_only", "vmt_adapter"):
        # O(1): the backbone pass once; only decoders are added (VMT's Eq. 4 is element-wise)
        assert g[m, 4]["gflops"] - g[m, 1]["gflops"] == pytest.approx(sum(dec[1:]), rel=1e-9)
        assert g[m, 4]["one_pass"]
    for m in ("adapter", "single_task_full"):
        # O(T): the whole pass per task, so FLOPs(T) = sum of T single-task models
        per_task = g[m, 1]["gflops"] - dec[0]
        assert g[m, 4]["gflops"] == pytest.approx(4 * per_task + sum(dec), rel=1e-9)
        assert not g[m, 4]["one_pass"]
    assert g["single_task_full", 4]["activation_mb"] > 3 * g["single_task_full", 1]["activation_mb"]
    assert g["vmt_adapter", 4]["train_gflops"] > g["vmt_adapter", 4]["gflops"]
    table = cost_markdown(rows)
    assert table.splitlines()[0].startswith("| T | decoders_only")
    assert "adapter †" in table and "(×1.00)" in table


# ----------------------------------------------------------------------------- results files


def test_load_ablation_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ablation.json"
    assert load_ablation(path) == []
    s = ablation_settings()
    assert [x.key for x in s][:1] == ["vmt_adapter(rho=1)"] and len(s) == 7
    assert s[-1].paper == {"encoder_m": 0.15, "all_m": 2.70, "delta_m": 0.06}
    rows = [{"key": x.key, "method": x.method, "kwargs": x.kw, "delta_m": float(i),
             "parameters": {"encoder": 1000 * (i + 1), "total": 5000}, "paper": x.paper}
            for i, x in enumerate(s)]
    write_json_atomic(path, {"config": {"steps": 3}, "settings": rows})
    assert load_ablation(path) == rows
    assert not (tmp_path / "ablation.json.tmp").exists()


def test_tradeoff_points_from_compare_and_ablation(tmp_path: Path) -> None:
    compare = {
        "single_task_full": {"delta_m": 0.0, "parameters": {"encoder": 4000, "total": 5000},
                             "metrics": {"semseg": {"mIoU": 50.0}, "sal": {"mIoU": 60.0}}},
        "vmt_adapter": {"delta_m": 1.5, "parameters": {"encoder": 100, "total": 1100}},
        "untrained": {"delta_m": None, "parameters": {"encoder": 1, "total": 1}},
    }
    path = tmp_path / "compare.json"
    path.write_text(json.dumps(compare))
    assert reference_from_compare(path) == {"semseg": 50.0, "sal": 60.0}
    results = iter_results(compare) + [{"method": "vmt_adapter_lite", "key": "lite(m=3)",
                                        "delta_m": -1.0,
                                        "parameters": {"encoder": 10, "total": 1010}}]
    pts = tradeoff_points(results)
    assert [p["label"] for p in pts] == ["lite(m=3)", "vmt_adapter", "single_task_full"]
    assert [p["one_pass"] for p in pts] == [True, True, False]
    assert pts[1]["params_m"] == pytest.approx(1e-4)
    assert iter_results({"results": [{"method": "x"}]}) == [{"method": "x"}]


@pytest.mark.skipif("mtlora" not in METHODS, reason="mtlora not registered")
def test_mtlora_task_specific_loras_are_not_shared() -> None:
    with torch.device("meta"):
        model = build_model("mtlora", **NANO)
    names = list(shared_parameters(model))
    assert names and not any(".tasks." in n for n in names)
    assert any(".shared." in n for n in names)


def test_measuring_saved_activations_does_not_leak_the_graph() -> None:
    """The saved-tensor hook must not tie saved outputs to their grad_fn (a C++
    reference cycle that gc cannot break: every measured graph would stay alive)."""
    import gc

    def live_tensors() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))

    model = build_model("adapter_shared", tasks=("sal",), **NANO)
    images = torch.randn(1, 3, 64, 64)
    before = live_tensors()
    cost = model_cost(model, images, backward=False)  # the graph is dropped, not backwarded
    assert cost["activation_bytes"] > 0 and cost["forward_flops"] > 0
    assert live_tensors() - before < 5
    cost = model_cost(model, images)
    assert cost["train_flops"] > cost["forward_flops"] > 0
    assert live_tensors() - before < 5  # and no .grad left behind
