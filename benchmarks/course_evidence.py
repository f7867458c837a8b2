"""The course's evidence: every method, one tuning effort, several seeds, intervals.

One command trains and reports the CPU course's comparison on SyntheticScenes
with the shipped swin_nano (pretrained in all four stages) and its random-init
control::

    .venv/bin/python benchmarks/course_evidence.py            # select, seeds, ablation, report
    .venv/bin/python benchmarks/course_evidence.py --stage report

The protocol (the same for every method; nothing is tuned more for one):

1. **Learning rate.** Each method trains with every value of ``--grid`` at seed 0;
   the value with the best score on the *selection scenes* (256 SyntheticScenes of
   seed 3) is chosen. The score is Delta_m on those scenes against the per-task mean
   of the method's own grid runs, so the choice depends on no other method. The
   chosen values are recorded.
2. **Seeds.** Each method is trained again at its chosen value with the other
   ``--seeds`` (seed: initialisation and batch order; the scenes are fixed).
3. **Ablation** (VMT-Adapter Table 3): ``vmt_adapter`` at rho 1, 2, 8 and
   ``vmt_adapter_lite`` at m 6, 12 (the comparison's rows are rho 4 and m 3), at the
   learning rate chosen for their method, with every seed: one hyperparameter
   varies, nothing else.
4. **Report** on the *test scenes* (256 SyntheticScenes of seed 2, never used for a
   choice): per task and for Delta_m the mean over seeds with a 95% Student-t
   interval (:mod:`vmtlib.stats`); Delta_m of each seed against single_task_full of
   the same seed; paired differences for the papers' claims, "resolved" only when
   their interval excludes 0.

Each finished run leaves one record, ``benchmarks/results/evidence/<name>__lr<lr>__s<seed>.json``
(its ``final.json`` plus seed, lr, the selection-scene metrics and the config), and
is never trained again while a record with the same config and backbone weights
exists; ``--commit`` commits each record as it lands, so the sweep can spread over
several sittings. An interrupted run resumes from its checkpoint in ``runs/evidence/``.

Budget (``Budget``; why these values: the README's "course evidence" section):
swin_nano at 128 px, batch 12, bfloat16 autocast on the CPU, decoders of width 64
(the SegFormer width scaled to swin_nano's 48-384 channels, as SegFormer scales it to
its encoders), Adam with weight decay 1e-4 and linear decay (the papers' recipe).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from vmtlib.analysis import headline_scores
from vmtlib.backbone import weights_fingerprint
from vmtlib.data import SyntheticScenes
from vmtlib.metrics import delta_m
from vmtlib.stats import mean_ci, paired_ci
from vmtlib.train import TrainConfig, Trainer
from vmtlib.utils import atomic_path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "benchmarks" / "results" / "evidence"


@dataclasses.dataclass(frozen=True)
class Spec:
    """One row of the comparison: a method on the pretrained or the random backbone."""

    name: str
    method: str
    pretrained: bool = True
    kwargs: tuple[tuple[str, Any], ...] = ()


COMPARISON: tuple[Spec, ...] = (
    Spec("single_task_full", "single_task_full"),
    Spec("decoders_only", "decoders_only"),
    Spec("decoders_only (random init)", "decoders_only", pretrained=False),
    Spec("multi_task_full", "multi_task_full"),
    Spec("vmt_adapter", "vmt_adapter"),
    Spec("vmt_adapter_lite", "vmt_adapter_lite"),
    Spec("adapter_shared", "adapter_shared"),
    Spec("mtlora", "mtlora"),
    Spec("adapter", "adapter"),
    Spec("polyhistor", "polyhistor"),
    Spec("polyhistor_lite", "polyhistor_lite"),
    Spec("lora", "lora"),
    Spec("bitfit", "bitfit"),
    Spec("vpt_deep", "vpt_deep"),
    Spec("compacter", "compacter"),
    Spec("hyperformer", "hyperformer"),
)
"""The issue's fifteen methods and the control, cheapest evidence first."""

ABLATION: tuple[tuple[Spec, str], ...] = (
    *((Spec(f"vmt_adapter rho={r}", "vmt_adapter", kwargs=(("rho", r),)), "vmt_adapter")
      for r in (1, 2, 8)),
    *((Spec(f"vmt_adapter_lite m={m}", "vmt_adapter_lite", kwargs=(("m", m),)),
       "vmt_adapter_lite") for m in (6, 12)),
)
"""The rho / m settings of VMT-Adapter Table 3 beyond the comparison's (rho 4, m 3),
each with the comparison row whose chosen learning rate it uses."""

ADAPTER_TYPE = ("adapter", "adapter_shared", "vmt_adapter", "vmt_adapter_lite", "polyhistor",
                "polyhistor_lite", "compacter", "hyperformer", "lora", "mtlora")
"""Methods that add modules to the frozen backbone (compared with decoders_only)."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every run of the comparison shares."""

    steps: int = 1000
    batch_size: int = 12
    img_size: int = 128
    decoder_dim: int = 64
    bf16: bool = True
    val_size: int = 256
    test_seed: int = 2
    select_seed: int = 3
    grid: tuple[float, ...] = (2e-4, 1e-3, 5e-3)
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "img_size", "decoder_dim", "val_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Budget.{name} must be positive, got {getattr(self, name)}")
        if self.test_seed == self.select_seed:
            raise ValueError("the selection scenes must differ from the test scenes")
        if not self.grid or any(lr <= 0 for lr in self.grid):
            raise ValueError(f"Budget.grid must hold positive learning rates, got {self.grid}")
        if not self.seeds or self.seeds[0] != 0:
            raise ValueError(f"Budget.seeds must start with 0 (the selection seed): {self.seeds}")

    def config(self, spec: Spec, lr: float, seed: int, out: Path) -> TrainConfig:
        return TrainConfig(
            method=spec.method, backbone="swin_nano", pretrained=spec.pretrained,
            method_kwargs=dict(spec.kwargs), decoder_dim=self.decoder_dim,
            img_size=self.img_size, batch_size=self.batch_size, steps=self.steps, lr=lr,
            val_size=self.val_size, val_seed=self.test_seed, seed=seed, out=str(out),
            bf16=self.bf16, progress=sys.stderr.isatty())


def slug(spec: Spec, lr: float, seed: int) -> str:
    name = spec.name.replace(" (random init)", "_random_init").replace(" ", "_")
    return f"{name}__lr{lr:g}__s{seed}"


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in ("out", "progress")}


def train_run(spec: Spec, lr: float, seed: int, budget: Budget, records: Path, runs: Path,
              commit: bool = False) -> dict[str, Any]:
    """The record of ``spec`` at ``lr`` and ``seed``: read when one with the same config
    and backbone weights exists, else trained (resuming a checkpoint), evaluated on the
    test and the selection scenes, and written."""
    path = records / f"{slug(spec, lr, seed)}.json"
    out = runs / slug(spec, lr, seed)
    cfg = budget.config(spec, lr, seed, out)
    weights = weights_fingerprint(cfg.backbone, cfg.pretrained)
    if path.is_file():
        record = json.loads(path.read_text())
        if (_comparable(record["config"]) == _comparable(cfg.to_json())
                and record["weights"] == weights):
            return record
    print(f"== {spec.name}, lr {lr:g}, seed {seed}", flush=True)
    trainer = Trainer(cfg, resume=(out / "checkpoint.pt").is_file())
    final = trainer.fit()
    trainer.val_set = SyntheticScenes(budget.val_size, size=budget.img_size,
                                      seed=budget.select_seed)
    select = trainer.evaluate()
    record = {**final, "name": spec.name, "seed": seed, "lr": lr,
              "test_scenes_seed": budget.test_seed, "select_scenes_seed": budget.select_seed,
              "select_metrics": select, "config": cfg.to_json()}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    if commit:
        commit_file(path, f"course evidence: {spec.name}, lr {lr:g}, seed {seed} "
                          f"({record['train_seconds'] / 60:.1f} min)")
    return record


def commit_file(path: Path, message: str, tries: int = 10) -> None:
    """``git add`` and ``git commit --only`` one file, retrying while another git command
    holds the repository's index lock (the sweep runs beside a working session)."""
    for attempt in range(tries):
        add = subprocess.run(["git", "-C", str(ROOT), "add", str(path)], capture_output=True)
        done = add.returncode == 0 and subprocess.run(
            ["git", "-C", str(ROOT), "commit", "-q", "--only", str(path), "-m", message],
            capture_output=True).returncode == 0
        if done:
            return
        time.sleep(3 * (attempt + 1))
    raise RuntimeError(f"could not commit {path} after {tries} tries (git index locked?)")


def choose_lr(records: Iterable[dict[str, Any]]) -> tuple[float, dict[str, float]]:
    """The learning rate whose selection-scene Delta_m, against the per-task mean of
    the given grid runs (one method's), is highest; and every value's score."""
    records = list(records)
    scores = [headline_scores(r["select_metrics"]) for r in records]
    mean = {t: sum(s[t] for s in scores) / len(scores) for t in scores[0]}
    by_lr = {r["lr"]: delta_m(s, mean) for r, s in zip(records, scores)}
    return max(by_lr, key=by_lr.get), by_lr


def summarise(budget: Budget, records: list[dict[str, Any]],
              chosen: dict[str, float]) -> dict[str, Any]:
    """Means and intervals per method (test scenes), Delta_m per seed against
    single_task_full of the same seed, and the paired differences of the claims."""
    runs = [r for r in records if r["lr"] == chosen.get(r["name"]) and r["seed"] in budget.seeds]
    ref = {r["seed"]: headline_scores(r["metrics"]) for r in runs
           if r["name"] == "single_task_full"}
    for r in runs:
        r["delta_m"] = delta_m(headline_scores(r["metrics"]), ref[r["seed"]]) \
            if r["seed"] in ref else None
    names = [s.name for s in (*COMPARISON, *(a for a, _ in ABLATION))
             if any(r["name"] == s.name for r in runs)]
    per_name: dict[str, dict[str, Any]] = {}
    for name in names:
        rs = [r for r in runs if r["name"] == name]
        scores = [headline_scores(r["metrics"]) for r in rs]
        row = {t: mean_ci([s[t] for s in scores]).to_json() for t in scores[0]}
        dms = [r["delta_m"] for r in rs if r["delta_m"] is not None]
        row["delta_m"] = mean_ci(dms).to_json() if dms else None
        row["seeds"] = sorted(r["seed"] for r in rs)
        row["lr"] = chosen[name]
        per_name[name] = row

    def by_seed(name: str, key: str) -> dict[int, float]:
        out = {}
        for r in runs:
            if r["name"] == name:
                out[r["seed"]] = r["delta_m"] if key == "delta_m" \
                    else headline_scores(r["metrics"])[key]
        return {s: v for s, v in out.items() if v is not None}

    claims = []
    pairs = [(m, "decoders_only") for m in ADAPTER_TYPE]
    pairs += [("vmt_adapter", b) for b in ("adapter_shared", "adapter", "polyhistor")]
    pairs += [("decoders_only", "decoders_only (random init)")]
    for a, b in pairs:
        if a not in per_name or b not in per_name:
            continue
        keys = ["delta_m"] if b != "decoders_only (random init)" else \
            ["semseg", "human_parts", "sal", "normals"]
        for key in keys:
            try:
                d = paired_ci(by_seed(a, key), by_seed(b, key))
            except ValueError:
                continue
            claims.append({"a": a, "b": b, "score": key, **d.to_json()})
    return {"methods": per_name, "claims": claims}


def markdown(summary: dict[str, Any]) -> str:
    def cell(ci: dict[str, Any] | None) -> str:
        if ci is None:
            return "—"
        if ci["n"] < 2 or math.isnan(ci["half"]):
            return f"{ci['mean']:.2f}"
        return f"{ci['mean']:.2f} ± {ci['half']:.2f}"

    lines = ["| method | lr | seeds | semseg mIoU | parts mIoU | sal mIoU | normals mErr "
             "| Δm (%) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in summary["methods"].items():
        lines.append(f"| {name} | {row['lr']:g} | {len(row['seeds'])} | {cell(row['semseg'])} "
                     f"| {cell(row['human_parts'])} | {cell(row['sal'])} "
                     f"| {cell(row['normals'])} | {cell(row['delta_m'])} |")
    lines += ["", "| claim | score | paired difference (95% CI) | seeds | resolved |",
              "|---|---|---:|---:|---|"]
    for c in summary["claims"]:
        lines.append(f"| {c['a']} − {c['b']} | {c['score']} | {cell(c)} | {c['n']} "
                     f"| {'yes' if c['resolved'] else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", choices=("select", "seeds", "ablation", "report", "all"),
                   default="all")
    p.add_argument("--only", nargs="*", default=None, metavar="NAME",
                   help="train only these rows (names of COMPARISON or ABLATION)")
    p.add_argument("--steps", type=int, default=Budget.steps)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--records", type=Path, default=RECORDS)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "evidence")
    p.add_argument("--commit", action="store_true", help="git-commit each record as it lands")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    budget = Budget(steps=args.steps)
    specs = [s for s in COMPARISON if args.only is None or s.name in args.only]
    ablation = [(s, base) for s, base in ABLATION if args.only is None or s.name in args.only]
    known = [s.name for s in COMPARISON] + [s.name for s, _ in ABLATION]
    unknown = set(args.only or ()) - set(known)
    if unknown:
        p.error(f"--only: unknown rows {sorted(unknown)}; known: {known}")

    def run(spec: Spec, lr: float, seed: int) -> dict[str, Any]:
        return train_run(spec, lr, seed, budget, args.records, args.runs, args.commit)

    start = time.perf_counter()
    if args.stage in ("select", "all"):
        for spec in specs:
            for lr in budget.grid:
                run(spec, lr, 0)
    records = [json.loads(f.read_text()) for f in sorted(args.records.glob("*.json"))]
    chosen, selection = {}, {}
    for spec in COMPARISON:
        grid_runs = [r for r in records if r["name"] == spec.name and r["seed"] == 0
                     and r["lr"] in budget.grid]
        if len(grid_runs) == len(budget.grid):
            chosen[spec.name], selection[spec.name] = choose_lr(grid_runs)
    if args.stage in ("seeds", "all"):
        for spec in specs:
            if spec.name in chosen:
                for seed in budget.seeds[1:]:
                    records.append(run(spec, chosen[spec.name], seed))
    for spec, base in ABLATION:
        if base in chosen:
            chosen[spec.name] = chosen[base]
    if args.stage in ("ablation", "all"):
        for spec, base in ablation:
            if base in chosen:
                for seed in budget.seeds:
                    run(spec, chosen[base], seed)
    records = [json.loads(f.read_text()) for f in sorted(args.records.glob("*.json"))]
    summary = summarise(budget, records, chosen)
    report = {"budget": dataclasses.asdict(budget),
              "weights": weights_fingerprint("swin_nano", True),
              "command": " ".join(["python", "benchmarks/course_evidence.py", *sys.argv[1:]]),
              "selection": {n: {"chosen": chosen[n], "scores": {f"{k:g}": v for k, v in s.items()}}
                            for n, s in selection.items()},
              "train_seconds_of_the_records": round(sum(r["train_seconds"] for r in records), 1),
              "wall_seconds_this_invocation": round(time.perf_counter() - start, 1),
              **summary}
    (args.records.parent / "evidence.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(summary)
    (args.records.parent / "evidence.md").write_text(table + "\n")
    print(table)
    return report


if __name__ == "__main__":
    main()
