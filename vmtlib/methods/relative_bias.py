"""Relative-position bias tuning: train Swin's relative-position tables only.

Swin's window attention (Liu et al. 2021, Eq. 4) is

    Attention(Q, K, V) = SoftMax(Q K^T / sqrt(d_head) + B) V,

with B gathered from a learnable table B_hat of (2M - 1)^2 x heads entries
(M = 7, the window size). This baseline (Polyhistor Table 1 "Relative bias")
trains B_hat of every block and nothing else.

Per task on Swin-T: 169 * sum_l heads_l = 169 * 138 = 23,322. ``relative_bias``
(four tasks) 0.093M against the papers' printed 0.09M (+3.7%; 0.093 prints
as 0.09, the table's precision is the only difference). ``relative_bias_shared``
0.023M against the VMT-Adapter paper's 0.03M: one table per block is all there
is to train, and a quarter of the per-task count (0.09 / 4) also gives 0.023M,
so the paper's shared figure cannot be reproduced by this baseline as
described; we report the gap rather than change the method.

``relative_bias`` is O(T) (task t's tables are B_hat + delta_t, see
:class:`~vmtlib.methods.base.PerTaskTensors`); ``relative_bias_shared`` is
O(1).
"""

from __future__ import annotations

from vmtlib.methods.base import PerTaskTensors, SharedTensors, is_relative_position_table


class RelativeBias(PerTaskTensors):
    """Multiple relative bias: the relative-position tables, one copy per task."""

    method_id = "relative_bias"
    description = "relative-position bias tables only, one copy per task (O(T))"
    table_row = 5
    select = staticmethod(is_relative_position_table)


class RelativeBiasShared(SharedTensors):
    """Shared relative bias: the backbone's own relative-position tables train."""

    method_id = "relative_bias_shared"
    description = "relative-position bias tables only, shared by all tasks (O(1))"
    table_row = 6
    select = staticmethod(is_relative_position_table)
