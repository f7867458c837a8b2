"""The multi-task model and the contract every method keeps."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import vmtlib
from vmtlib import ALL_TASKS, build_model, count_parameters
from vmtlib.analysis import task_set
from vmtlib.backbone import SwinBackbone
from vmtlib.methods import get_method_class
from vmtlib.tasks import TASKS

METHODS = list(vmtlib.METHODS)


@pytest.mark.parametrize("size", [224, 512])
@pytest.mark.parametrize("method", METHODS)
def test_output_shapes_on_swin_tiny(method: str, size: int) -> None:
    with torch.device("meta"):
        model = build_model(method, backbone="swin_tiny", img_size=size)
        out = model(torch.empty(2, 3, size, size))
    assert set(out) == set(ALL_TASKS)
    for task, pred in out.items():
        assert tuple(pred.shape) == (2, TASKS[task].channels, size, size)


@pytest.mark.parametrize("method", METHODS)
def test_one_step_lowers_a_loss_and_moves_the_encoder(method: str) -> None:
    model = build_model(method, backbone="swin_nano", img_size=64)
    images = torch.randn(2, 3, 64, 64)
    targets = {t: torch.randn(2, TASKS[t].channels, 64, 64) for t in ALL_TASKS}
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in model.encoder.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=1e-3)

    def loss_value() -> torch.Tensor:
        out = model(images)
        return sum(((out[t] - targets[t]) ** 2).mean() for t in ALL_TASKS)

    model.eval()  # no dropout: the same loss before and after
    first = loss_value()
    for _ in range(3):
        opt.zero_grad()
        loss_value().backward()
        opt.step()
    assert loss_value() < first
    after = [p.detach() for p in model.encoder.parameters() if p.requires_grad]
    if method == "decoders_only":
        assert before == []
    else:
        assert any(not torch.equal(a, b) for a, b in zip(before, after))


class _SelectBackwardCount(TorchDispatchMode):
    """Counts ``aten.select_backward``: each fills a zero tensor of the whole input."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten.select_backward.default
        return func(*args, **(kwargs or {}))


# decoders_only is left out: its encoder has nothing to differentiate
ONE_PASS_TRAINED = [m for m in METHODS if get_method_class(m).one_pass and m != "decoders_only"]


@pytest.mark.parametrize("method", ONE_PASS_TRAINED)
def test_one_pass_backward_does_not_select_each_task_from_a_stack(method: str) -> None:
    """Taking task i's stream as ``stack[i]`` costs a zero tensor of all T streams
    in the backward, for every task: O(T^2) memory traffic. ``unbind`` is one stack."""

    def selects(tasks: int) -> int:
        torch.manual_seed(0)
        model = build_model(method, backbone="swin_nano", tasks=task_set(tasks), img_size=32)
        feats = model.encoder(torch.randn(1, 3, 32, 32))
        loss = sum(f.sum() for fs in feats.values() for f in fs)
        with _SelectBackwardCount() as counter:
            loss.backward()
        return counter.count

    assert selects(4) == selects(1)


def _backbone_names() -> set[str]:
    with torch.device("meta"):
        return {n for n, _ in SwinBackbone("swin_tiny").named_parameters()}


@pytest.mark.parametrize(
    "method",
    ["decoders_only", "adapter", "adapter_shared", "low_rank_adapter", "low_rank_adapter_shared",
     "vmt_adapter", "vmt_adapter_lite"],
)
def test_pretrained_weights_stay_frozen(method: str) -> None:
    with torch.device("meta"):
        model = build_model(method)
    original = _backbone_names()
    for name, p in model.encoder.backbone.named_parameters():
        plain = name.replace(".block.", ".")
        if plain in original:
            assert not p.requires_grad, name
        else:
            assert p.requires_grad, name  # everything the method inserted trains


@pytest.mark.parametrize("method", ["multi_task_full", "single_task_full"])
def test_full_fine_tuning_trains_every_backbone_weight(method: str) -> None:
    with torch.device("meta"):
        model = build_model(method)
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_decoders_always_train_and_count_2_55m_on_swin_tiny() -> None:
    with torch.device("meta"):
        model = build_model("decoders_only")
    counts = count_parameters(model)
    assert counts["encoder"] == 0
    assert counts["decoders"] == pytest.approx(2.55e6, rel=0.01)
    assert all(p.requires_grad for p in model.decoders.parameters())


def test_single_task_full_has_independent_backbones() -> None:
    model = build_model("single_task_full", backbone="swin_nano", img_size=64, tasks="semseg,sal")
    a, b = model.encoder.backbones
    assert a.patch_embed.proj.weight.data_ptr() != b.patch_embed.proj.weight.data_ptr()


def test_unknown_method_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown method 'vmt'.*vmt_adapter"):
        build_model("vmt")


def test_unknown_task_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown task 'depth'.*semseg, human_parts, sal, normals"):
        build_model("vmt_adapter", tasks=("semseg", "depth"))


def test_unknown_hyper_parameter_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"\['alpha'\].*rho"):
        build_model("vmt_adapter", alpha=3)


def test_task_subsets_build_one_decoder_each() -> None:
    model = build_model("vmt_adapter", backbone="swin_nano", img_size=64, tasks="normals,sal")
    out = model(torch.randn(1, 3, 64, 64))
    assert list(out) == ["normals", "sal"]


@pytest.mark.parametrize("tasks", [3, None, (("semseg", "sal"),), {"semseg", "sal"}])
def test_tasks_of_the_wrong_kind_are_refused_by_name(tasks) -> None:
    with pytest.raises(ValueError, match="tasks must be task ids in order"):
        build_model("decoders_only", backbone="swin_nano", tasks=tasks, img_size=64)


def test_images_the_model_cannot_take_get_a_clear_error() -> None:
    model = build_model("decoders_only", backbone="swin_nano", tasks=("sal",), img_size=64)
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="B >= 1"):
        model(x[:0])
    with pytest.raises(ValueError, match="the model is torch.float32"):
        model(x.double())
    with pytest.raises(ValueError, match="the model is torch.float32"):
        model((x * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model(x.numpy())
    with pytest.raises(TypeError, match="MultiTaskModel"):
        count_parameters(torch.nn.Linear(3, 3))
