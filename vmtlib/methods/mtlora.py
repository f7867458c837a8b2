"""MTLoRA (Agiza et al., CVPR 2024): task-agnostic and task-specific low-rank adaptation.

Every frozen linear layer W of the attention (``qkv``, ``proj``) and the MLP
(``fc1``, ``fc2``) of every Swin block gets a task-agnostic LoRA (TA-LoRA):

    y = x W + b + s B A x,   A: d_in x 64,  B: 64 x d_out (zero at start),  s = 4.

In the last block of each stage, ``proj``, ``fc1`` and ``fc2`` also get one
task-specific LoRA (TS-LoRA) per task (rank 4, scale 4), and that block
computes, besides the shared stream x_s that continues into the next stage,
one stream x_t per task, which is the stage's feature for task t's decoder.
Write L(z) = z W + b + TA(z) for a shared layer (frozen W plus TA-LoRA) and
LoRA_t(z) = s B_t A_t z for task t's. With a the (shared) attention output
before ``proj`` and g = GELU, the last block computes

    x_s' = x + L_proj(a)                  x_t' = x_s' + LoRA_t(a)
    u_s  = L_fc1(LN2(x_s'))               u_t  = u_s + LoRA_t(LN2(x_t'))
    out_s = x_s' + L_fc2(g(u_s))          out_t = x_t' + L_fc2(g(u_s)) + LoRA_t(g(u_t))

that is, each task stream reuses the shared stream's outputs of ``proj``,
``fc1`` and ``fc2`` and adds only a low-rank correction computed from its
own input (``shared_mode='matrixv2'`` of MTLoRA's public code). That is why
MTLoRA stays one pass (O(1)): per extra task the encoder adds one LayerNorm
(LN2), a GELU and three rank-4 products in four blocks; every other block, the
patch mergings and all attention are shared by all tasks. ``'matrixv2'`` is a
deliberate choice: the code's default ``'matrix'``, which its released
configurations keep (``mtlora_tiny_448_r64_scale4_pertask.yaml`` included),
drops the shared TA-LoRA output from the task streams, which leaves the TA-LoRA
of ``fc2`` in the very last block without any gradient, since no decoder reads
stage 4's shared stream; the parameter count is the same. With every B zero at
start, every task stream starts equal to the shared stream, i.e. the
pretrained network.

Trainable besides the LoRAs (MTLoRA's ``mark_only_lora_as_trainable`` with
its defaults): the patch embedding, every LayerNorm, the patch-merging
reductions and the relative-position bias tables. Count on Swin-T, four
tasks: TA-LoRA 1024 sum_l d_l = 4.52M, TS-LoRA 4 x 48 x 1440 = 0.28M, the
rest 1.60M: 6.40M, MTLoRA's 8.34M at r = 64 (supplement Table 4) less its
1.94M HRNet decoders (Table 2); at r = 32 the same count gives 4.14M, Table 2's
6.08 - 1.94 (and 6.22 - 2.08 with SegFormer decoders).

The stage features of the tasks are the task streams of the last blocks,
taken before the next stage's patch merging (timm's layout: downsampling at
the start of a stage). MTLoRA's code, whose stages end with the patch
merging, hands the decoders the merged task streams instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from vmtlib.backbone import SwinBackbone, block_attention
from vmtlib.methods.base import MethodConfig, MethodState, OnePassMethod
from vmtlib.methods.layers import FrozenLinear, LowRankBranch, replace_blocks


class MTLoRALinear(FrozenLinear):
    """A frozen linear layer with TA-LoRA and optionally one TS-LoRA per task.

    Takes over the wrapped layer's ``weight`` and ``bias`` (their names stay).
    With ``stack_tasks`` (the ``proj`` of a last block) the output is the
    shared output followed by every task's, stacked along the batch dimension,
    so timm's window-merging code, which works per image, merges all streams.
    """

    def __init__(
        self,
        base: nn.Linear,
        rank: int,
        task_rank: int,
        num_tasks: int,
        scale: float,
        stack_tasks: bool = False,
    ) -> None:
        super().__init__(base)
        self.shared = LowRankBranch(self.in_features, self.out_features, rank, scale)
        self.tasks = nn.ModuleList(
            LowRankBranch(self.in_features, self.out_features, task_rank, scale)
            for _ in range(num_tasks)
        )
        self.stack_tasks = stack_tasks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self.frozen(x) + self.shared(x)
        if not self.stack_tasks:
            return shared
        return torch.cat([shared] + [shared + branch(x) for branch in self.tasks])

    def task_output(self, shared: torch.Tensor, x: torch.Tensor, task: int) -> torch.Tensor:
        """Task ``task``'s output: the shared stream's output plus LoRA_t of the task's input."""
        return shared + self.tasks[task](x)


class TaskSpecificBlock(nn.Module):
    """The last block of a stage: the shared stream plus one stream per task.

    Returns the shared stream; leaves the task streams ``(T, B, H, W, C)`` in
    ``state.stage_extras[stage]``. The wrapped block is ``self.block``.
    """

    def __init__(self, block: nn.Module, stage: int, num_tasks: int, state: MethodState) -> None:
        super().__init__()
        self.block = block
        self.stage, self.num_tasks, self.state = stage, num_tasks, state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blk, mlp, t = self.block, self.block.mlp, self.num_tasks
        b, h, w, c = x.shape
        # proj stacks [shared; tasks] along the batch
        a = block_attention(blk, blk.norm1(x)).view(1 + t, b, h * w, c)
        x = x.reshape(b, h * w, c)
        xs = x + blk.drop_path1(a[0])
        xt = x + blk.drop_path1(a[1:])  # (T, B, N, C)

        def act(u: torch.Tensor) -> torch.Tensor:
            return mlp.norm(mlp.drop1(mlp.act(u)))

        ms, mt = blk.norm2(xs), blk.norm2(xt)
        us = mlp.fc1(ms)
        # unbind, not mt[i]: the backward of T selections fills T zero tensors of all T streams
        ut = torch.stack([mlp.fc1.task_output(us, m, i) for i, m in enumerate(mt.unbind(0))])
        gs, gt = act(us), act(ut)
        ys = mlp.fc2(gs)
        yt = torch.stack([mlp.fc2.task_output(ys, g, i) for i, g in enumerate(gt.unbind(0))])
        out_s = xs + blk.drop_path2(mlp.drop2(ys))
        out_t = xt + blk.drop_path2(mlp.drop2(yt))
        self.state.stage_extras[self.stage] = out_t.view(t, b, h, w, c)
        return out_s.view(b, h, w, c)


def unfreeze_mtlora_extras(backbone: SwinBackbone) -> None:
    """MTLoRA's non-LoRA trainable set: patch embedding, LayerNorms, merging reductions,
    relative-position tables."""
    backbone.patch_embed.requires_grad_(True)
    for module in backbone.modules():
        if isinstance(module, nn.LayerNorm):
            module.requires_grad_(True)
    for stage in backbone.layers:
        if not isinstance(stage.downsample, nn.Identity):
            stage.downsample.reduction.requires_grad_(True)
    for _, _, block in backbone.blocks():
        block.attn.relative_position_bias_table.requires_grad_(True)


@dataclasses.dataclass(frozen=True)
class MTLoRAConfig(MethodConfig):
    """r: task-agnostic rank (64); r_task: task-specific rank (4); scale: LoRA scale (4)."""

    r: int = 64
    r_task: int = 4
    scale: float = 4.0


class MTLoRA(OnePassMethod):
    """MTLoRA: shared LoRA everywhere, per-task LoRA in the last block of each stage."""

    method_id = "mtlora"
    description = "MTLoRA: shared LoRA + per-task LoRA in each stage's last block, one pass (O(1))"
    table_row = 23
    task_module_lists = ("tasks",)
    Config = MTLoRAConfig

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: MTLoRAConfig) -> None:
        super().__init__(backbone, tasks, config)
        unfreeze_mtlora_extras(backbone)
        t = self.num_tasks

        def lora(layer: nn.Linear, specific: bool, stack: bool = False) -> MTLoRALinear:
            n = t if specific else 0
            return MTLoRALinear(layer, config.r, config.r_task, n, config.scale, stack)

        def last_block(s: int, i: int, block: nn.Module) -> TaskSpecificBlock | None:
            specific = i == len(backbone.layers[s].blocks) - 1
            block.attn.qkv = lora(block.attn.qkv, False)
            block.attn.proj = lora(block.attn.proj, specific, stack=specific)
            block.mlp.fc1 = lora(block.mlp.fc1, specific)
            block.mlp.fc2 = lora(block.mlp.fc2, specific)
            return TaskSpecificBlock(block, s, t, self.state) if specific else None

        replace_blocks(backbone, last_block)

    def task_features(self, feats: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        extras = self.state.stage_extras
        stages = range(len(feats))
        streams = [extras[s].unbind(0) for s in stages]  # (see TaskSpecificBlock: not [i])
        return {task: [streams[s][i] for s in stages] for i, task in enumerate(self.tasks)}
