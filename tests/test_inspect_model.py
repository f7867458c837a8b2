"""vmtlib.inspect_model: parameter, pass and FLOP counts the notebooks print."""

import pytest
import torch

import vmtlib
from vmtlib.inspect_model import (
    backbone_passes,
    block_parameters,
    encoder_cost,
    encoder_count,
    meta_model,
)

SWIN_T_WIDTH_SUM = 4416  # sum of Swin-T's 12 block widths


def test_encoder_count_matches_count_parameters_and_the_papers_formula() -> None:
    torch.manual_seed(0)
    model = vmtlib.build_model("vmt_adapter", backbone="swin_nano", img_size=64)
    assert encoder_count("vmt_adapter", backbone="swin_nano", img_size=64) == \
        vmtlib.count_parameters(model)["encoder"]
    # Table 1's 2Td: one more task adds alpha_i and gamma_i in every block
    one = encoder_count("vmt_adapter", tasks=("semseg",))
    two = encoder_count("vmt_adapter", tasks=("semseg", "sal"))
    assert two - one == 2 * SWIN_T_WIDTH_SUM
    assert encoder_count("adapter", tasks=("semseg",)) == 2_172_000  # d^2 + 3.5 d per block


@pytest.mark.parametrize(("method", "expected"), [("adapter", [1, 2, 3, 4]),
                                                  ("adapter_shared", [1, 1, 1, 1]),
                                                  ("vmt_adapter", [1, 1, 1, 1])])
def test_backbone_passes_follow_the_method(method: str, expected: list[int]) -> None:
    passes = [backbone_passes(meta_model(method, "swin_nano", vmtlib.ALL_TASKS[:t], img_size=64))
              for t in (1, 2, 3, 4)]
    assert passes == expected


def test_backbone_passes_on_a_real_model_and_an_explicit_size() -> None:
    model = vmtlib.build_model("lora", backbone="swin_nano", img_size=64,
                               tasks=("semseg", "sal", "normals"))
    assert backbone_passes(model) == 3
    assert backbone_passes(model, img_size=32) == 3


def test_encoder_cost_is_t_passes_for_multiple_and_one_for_vmt() -> None:
    one = encoder_cost("adapter", ("semseg",), backbone="swin_nano", img_size=64)
    four = encoder_cost("adapter", vmtlib.ALL_TASKS, backbone="swin_nano", img_size=64)
    assert (one["passes"], four["passes"], four["one_pass"]) == (1, 4, False)
    assert four["gflops"] == pytest.approx(4 * one["gflops"])
    vmt = encoder_cost("vmt_adapter", vmtlib.ALL_TASKS, backbone="swin_nano", img_size=64)
    assert (vmt["passes"], vmt["one_pass"]) == (1, True)
    assert vmt["gflops"] > 0


def test_block_parameters_of_the_adapter_and_bitfit() -> None:
    adapter = block_parameters("adapter")  # stage 1, second block: d = 96, rho = 2
    assert adapter["hooks.mlp_adapters.0.down.weight"] == (48, 96)
    assert sum(torch.Size(s).numel() for s in adapter.values()) == 96 * 96 + 3.5 * 96
    bitfit = block_parameters("bitfit")
    assert bitfit["offsets.0.attn.relative_position_bias_table"] == (169, 3)
