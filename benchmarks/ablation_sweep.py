"""The rho / m ablation of VMT-Adapter Table 3 on SyntheticScenes.

Trains ``vmt_adapter`` for rho in {1, 2, 4, 8} and ``vmt_adapter_lite`` for
m in {3, 6, 12} (rho = 4) with ``vmtlib.train.Trainer`` on swin_nano, every
setting with the same budget (``--steps``, ``--batch-size``, ``--img-size``,
seed), and writes ``benchmarks/results/ablation.json``: per setting the
metrics, Delta_m against single-task full fine-tuning, the trainable
parameters on swin_nano, our count on Swin-T and the paper's Table 3 numbers
(parameters and Delta_m on PASCAL-Context). Widgets read it with
``vmtlib.analysis.load_ablation``.

Delta_m reference (``--reference``): ``compare`` takes single_task_full's
metrics from ``benchmarks/results/compare.json`` (refused unless that file was
trained with the same backbone weights, steps, batch, image size, learning rate,
validation size and seed);
``train`` trains single_task_full here with the same budget; ``auto`` (default)
uses compare.json when it holds single_task_full with the same budget, else trains.

Nothing is lost on interruption: the JSON is rewritten atomically after each
setting, settings already in it with the same budget are skipped, and a
setting cut short resumes from its run directory's checkpoint
(``runs/ablation/<budget>/<setting>``).

Run: ``python benchmarks/ablation_sweep.py [--steps 300 --batch-size 12
--img-size 128] --threads 1``; 3.5-3.8 minutes per setting on one CPU thread
of the shared 2-core machine, 26 minutes for the seven (``wall_seconds`` in
``ablation.json``), with the single_task_full reference read from compare.json
(trained here instead, it adds about 9 minutes: 300 steps of batch 12 at the
6.8 images/s that compare.json records). The
pretrained swin_nano is used when ``vmtlib/weights/swin_nano.safetensors``
exists (``--pretrained auto``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from vmtlib.analysis import (  # noqa: E402
    AblationSetting,
    ablation_settings,
    headline_scores,
    reference_from_compare,
    write_json_atomic,
)
from vmtlib.backbone import course_pretrained, weights_fingerprint  # noqa: E402
from vmtlib.metrics import delta_m  # noqa: E402
from vmtlib.params import parameter_row  # noqa: E402
from vmtlib.plots import plot_ablation, save_figure  # noqa: E402
from vmtlib.train import COURSE_LR, TrainConfig, Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def budget_of(args: argparse.Namespace, pretrained: bool) -> dict[str, Any]:
    """What must match for two results to be comparable."""
    return {"backbone": "swin_nano", "pretrained": pretrained,
            "weights": weights_fingerprint("swin_nano", pretrained), "data": "synthetic",
            "steps": args.steps, "batch_size": args.batch_size, "img_size": args.img_size,
            "lr": args.lr, "val_size": args.val_size, "seed": args.seed}


def budget_tag(budget: dict[str, Any]) -> str:
    return (f"s{budget['steps']}_b{budget['batch_size']}_i{budget['img_size']}_lr{budget['lr']:g}"
            f"_v{budget['val_size']}_p{int(budget['pretrained'])}_seed{budget['seed']}"
            + (f"_w{budget['weights'][7:15]}" if budget["weights"] else ""))


def compare_budget_mismatch(budget: dict[str, Any]) -> str:
    """How compare.json's budget differs from ``budget`` ("" when it matches or is absent):
    a Delta_m reference trained for another number of steps would not be comparable."""
    path = RESULTS / "compare.json"
    if not path.is_file():
        return ""
    setting = json.loads(path.read_text()).get("setting", {})
    keys = ("weights", "steps", "batch_size", "img_size", "lr", "val_size", "seed")
    return ", ".join(f"{k} {setting.get(k)} != {budget[k]}" for k in keys
                     if setting.get(k) != budget[k])


def train(method: str, kwargs: dict[str, Any], budget: dict[str, Any], run_dir: Path,
          progress: bool) -> dict[str, Any]:
    """Train one setting (resuming from its checkpoint if any); Trainer's final result."""
    cfg = TrainConfig(
        method=method, method_kwargs=kwargs, backbone=budget["backbone"],
        pretrained=budget["pretrained"], img_size=budget["img_size"],
        batch_size=budget["batch_size"], steps=budget["steps"], lr=budget["lr"],
        val_size=budget["val_size"],
        seed=budget["seed"], out=str(run_dir), progress=progress,
    )
    start = time.perf_counter()
    result = Trainer(cfg, resume=True).fit()
    result["wall_seconds"] = time.perf_counter() - start
    return result


def swin_tiny_counts(setting: AblationSetting) -> dict[str, int]:
    row = parameter_row(setting.method, "swin_tiny", **setting.kw)
    return {"encoder": row["encoder"], "all": row["all"]}


def markdown(data: dict[str, Any]) -> str:
    ref = data.get("reference") or {}
    lines = [
        "| setting | Δm (%) ours | Δm (%) paper | enc. params swin_nano | "
        "enc. / all Swin-T ours (M) | enc. / all Swin-T paper (M) | minutes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in data["settings"]:
        p = {k: f"{v:.2f}" for k, v in (s.get("paper") or {}).items()}
        dm = s.get("delta_m")
        lines.append(
            f"| {s['key']} | {'' if dm is None else f'{dm:+.2f}'} | {p.get('delta_m', '')} | "
            f"{s['parameters']['encoder']:,} | {s['swin_tiny']['encoder'] / 1e6:.2f} / "
            f"{s['swin_tiny']['all'] / 1e6:.2f} | {p.get('encoder_m', '')} / {p.get('all_m', '')}"
            f" | {s.get('wall_seconds', 0) / 60:.1f} |"
        )
    return (f"Budget: {json.dumps(data['config']['budget'])}; Δm reference: "
            f"{ref.get('source', 'none')}.\n\n" + "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=COURSE_LR)
    parser.add_argument("--val-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrained", default="auto", type=course_pretrained,
                        help="auto | true | false")
    parser.add_argument("--reference", default="auto", choices=("auto", "compare", "train"))
    parser.add_argument("--only", default=None,
                        help="regex on setting keys, e.g. 'rho=4|m=3' (default: all seven)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "ablation.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budget = budget_of(args, args.pretrained)
    runs = ROOT / "runs" / "ablation" / budget_tag(budget)
    out = Path(args.out)
    data: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    previous = {s["key"]: s for s in data.get("settings", [])}
    data["config"] = {
        "budget": budget, "reference_mode": args.reference,
        "command": " ".join(["python", "benchmarks/ablation_sweep.py", *sys.argv[1:]]),
    }

    # -- the Delta_m reference
    ref = data.get("reference")
    compare = None
    if args.reference in ("auto", "compare"):
        mismatch = compare_budget_mismatch(budget)
        if mismatch and args.reference == "compare":
            raise SystemExit(f"benchmarks/results/compare.json was trained with another budget "
                             f"({mismatch}); run the sweep with that budget or --reference train")
        compare = None if mismatch else reference_from_compare(RESULTS / "compare.json")
    if args.reference == "compare" and compare is None:
        raise SystemExit("no single_task_full in benchmarks/results/compare.json")
    if compare is not None:
        ref = {"source": "compare.json single_task_full", "scores": compare}
    elif not (ref and ref.get("budget") == budget and ref.get("source", "").startswith("train")):
        print("training the single_task_full reference with the same budget")
        result = train("single_task_full", {}, budget, runs / "single_task_full",
                       not args.no_progress)
        ref = {"source": "trained here: single_task_full, same budget", "budget": budget,
               "scores": headline_scores(result["metrics"]), "metrics": result["metrics"],
               "parameters": result["parameters"], "wall_seconds": result["wall_seconds"]}
    data["reference"] = ref
    write_json_atomic(out, {**data, "settings": list(previous.values())})

    # -- the settings
    settings = [s for s in ablation_settings() if not args.only or re.search(args.only, s.key)]
    for setting in settings:
        old = previous.get(setting.key)
        if old is not None and old.get("budget") == budget:
            print(f"{setting.key}: already in {out.name}, skipped")
            continue
        print(f"{setting.key}: training")
        result = train(setting.method, setting.kw, budget, runs / re.sub(r"\W+", "_", setting.key),
                       not args.no_progress)
        previous[setting.key] = {
            "key": setting.key,
            "method": setting.method,
            "kwargs": setting.kw,
            "budget": budget,
            "metrics": result["metrics"],
            "scores": headline_scores(result["metrics"]),
            "parameters": result["parameters"],
            "swin_tiny": swin_tiny_counts(setting),
            "paper": setting.paper,
            "train_images_per_second": result["train_images_per_second"],
            "wall_seconds": result["wall_seconds"],
        }
        for s in previous.values():  # the reference may be newer than old settings
            s["delta_m"] = delta_m(s["scores"], ref["scores"])
        order = {s.key: i for i, s in enumerate(ablation_settings())}
        rows = sorted(previous.values(), key=lambda s: order.get(s["key"], len(order)))
        write_json_atomic(out, {**data, "settings": rows})
        print(f"{setting.key}: delta_m {previous[setting.key]['delta_m']:+.2f}% "
              f"({result['wall_seconds'] / 60:.1f} min)")

    final = json.loads(out.read_text())
    for s in final["settings"]:
        s["delta_m"] = delta_m(s["scores"], ref["scores"])
    write_json_atomic(out, final)
    md = markdown(final)
    out.with_suffix(".md").write_text(md)
    if final["settings"] and out.resolve() == (RESULTS / "ablation.json").resolve():
        save_figure(plot_ablation(final["settings"]), "ablation")  # only for the committed file
    print(md)


if __name__ == "__main__":
    main()
