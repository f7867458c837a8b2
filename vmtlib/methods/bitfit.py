"""BitFit: train the biases only, one set per task ("Multiple") or shared.

BitFit (Ben Zaken et al. 2022; Polyhistor Sec. 5.2) keeps every weight
matrix frozen and trains the additive terms: for a layer y = x W + b only b
moves. In a Swin block that is the bias of ``norm1``, ``attn.qkv``,
``attn.proj``, ``norm2``, ``mlp.fc1`` and ``mlp.fc2``; outside the blocks the
patch projection's and patch-embedding norm's biases and the patch-merging
norms' biases (Polyhistor: "we also tune biases in patch merging layers and
patch projection layers"; timm's merging reduction has no bias). Swin's
relative-position bias tables ``B`` in softmax(Q K^T / sqrt(d) + B) V are
biases too and count.

Per task on Swin-T: 11 sum_l d_l = 48,576 in the blocks, 23,322 in the
relative-position tables, 192 in the patch embedding and 2,688 in the
merging norms: 74,778. ``bitfit`` (four tasks) 0.299M against the papers'
0.30M; ``bitfit_shared`` 0.075M against the VMT-Adapter paper's 0.08M (-6.5%:
the papers' Swin keeps the final LayerNorm before the classifier, whose 768
biases we drop with the head, and 0.0755M would print as 0.08).

``bitfit`` is O(T): task t's pass runs the backbone with the biases b + delta_t
through :func:`torch.func.functional_call`
(:class:`~vmtlib.methods.base.PerTaskTensors`). The trainable tensors delta_t
start at zero, so every task starts from the pretrained network; training
delta_t is training a private copy of b (same count, same gradients; weight
decay pulls towards the pretrained bias instead of towards zero).
``bitfit_shared`` is O(1): the backbone's own biases train.
"""

from __future__ import annotations

from vmtlib.methods.base import (  # noqa: F401  (PerTaskTensors, unfreeze: their old home)
    PerTaskTensors,
    SharedTensors,
    is_relative_position_table,
    unfreeze,
)


def is_bias(name: str) -> bool:
    """BitFit's selection: every ``*.bias`` and every relative-position bias table."""
    last = name.rsplit(".", 1)[-1]
    return last in ("bias", "relative_position_bias_table")


class BitFit(PerTaskTensors):
    """Multiple BitFit: every bias (and relative-position table), one copy per task."""

    method_id = "bitfit"
    description = "BitFit: biases and relative-position tables, one copy per task (O(T))"
    table_row = 3
    select = staticmethod(is_bias)


class BitFitShared(SharedTensors):
    """Shared BitFit: the backbone's own biases train, for all tasks at once."""

    method_id = "bitfit_shared"
    description = "BitFit: biases and relative-position tables, shared by all tasks (O(1))"
    table_row = 4
    select = staticmethod(is_bias)
