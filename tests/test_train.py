"""The Trainer: determinism, atomic checkpoints and resume after SIGKILL, DDP on gloo, CLI."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from vmtlib.backbone import weights_fingerprint
from vmtlib.train import TrainConfig, Trainer, load_checkpoint, save_checkpoint, trainable_state

TINY = dict(backbone="swin_nano", pretrained=False, img_size=64, batch_size=2, train_size=32,
            val_size=4, progress=False)


def tiny(tmp_path: Path, **overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(tmp_path), **overrides})


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    a = Trainer(tiny(tmp_path / "a", steps=3, seed=3)).fit()
    b = Trainer(tiny(tmp_path / "b", steps=3, seed=3)).fit()
    c = Trainer(tiny(tmp_path / "c", steps=3, seed=4)).fit()
    assert a["metrics"] == b["metrics"]
    assert a["metrics"] != c["metrics"]


def test_run_directory_contents(tmp_path: Path) -> None:
    result = Trainer(tiny(tmp_path, steps=2, eval_every=1, method="adapter_shared",
                          pretrained=True)).fit()
    assert json.loads((tmp_path / "config.json").read_text())["method"] == "adapter_shared"
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]
    losses = [json.loads(x) for x in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert [x["step"] for x in losses] == [2]  # every LOG_EVERY steps and the last
    assert set(losses[0]["losses"]) == set(result["metrics"])
    assert losses[0]["loss"] > 0 and losses[0]["lr"] == 0.0  # linear decay ends at zero
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["steps"] == 2 and final["metrics"] == result["metrics"]
    assert final["weights"] == weights_fingerprint("swin_nano", True)  # the shipped file's hash
    assert final["parameters"]["encoder"] > 0
    assert set(final["metrics"]["normals"]) >= {"mean", "median", "rmse"}


def test_checkpoint_holds_only_trainable_tensors(tmp_path: Path) -> None:
    trainer = Trainer(tiny(tmp_path, steps=1, method="vmt_adapter"))
    trainer.fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert set(state["model"]) - trainable == {
        k for k in state["model"] if k.startswith("decoders.") and k not in trainable
    }
    assert not any(k.startswith("encoder.backbone.patch_embed") for k in state["model"])


def test_checkpoint_of_another_method_is_refused_by_name(tmp_path: Path) -> None:
    Trainer(tiny(tmp_path, steps=1, method="vmt_adapter")).fit()
    other = Trainer(tiny(tmp_path / "other", steps=1, method="adapter_shared"))
    with pytest.raises(ValueError, match="vmt_adapter.*adapter_shared"):
        load_checkpoint(tmp_path / "checkpoint.pt", other.model)


def test_a_finished_run_fitted_again_keeps_its_throughput(tmp_path: Path) -> None:
    first = Trainer(tiny(tmp_path, steps=2, method="vmt_adapter")).fit()
    again = Trainer(tiny(tmp_path, steps=2, method="vmt_adapter"), resume=True).fit()
    assert again["steps"] == 2 and again["metrics"] == first["metrics"]
    assert again["train_seconds"] == first["train_seconds"]  # nothing trained the second time
    assert again["train_images_per_second"] == pytest.approx(first["train_images_per_second"])


def test_atomic_save_leaves_the_old_checkpoint_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"step": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"step": 2, "bad": Unpicklable()})
    assert torch.load(path, weights_only=True)["step"] == 1


def _cli(out: Path, steps: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vmtlib", "train", "--backbone", "swin_nano", "--pretrained",
            "false", "--img-size", "64", "--batch-size", "2", "--train-size", "64", "--val-size",
            "4", "--steps", str(steps), "--seed", "1", "--out", str(out), "--no-progress", *extra]


def test_sigkill_then_resume_finishes_like_an_uninterrupted_run(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    steps = 40
    proc = subprocess.Popen(_cli(tmp_path / "killed", steps), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    killed_seconds = torch.load(checkpoint, weights_only=True)["train_seconds"]
    assert 0 < killed_at < steps
    subprocess.run(_cli(tmp_path / "killed", steps, "--resume"), env=env, check=True,
                   capture_output=True)
    subprocess.run(_cli(tmp_path / "straight", steps), env=env, check=True, capture_output=True)
    resumed = json.loads((tmp_path / "killed" / "final.json").read_text())
    straight = json.loads((tmp_path / "straight" / "final.json").read_text())
    assert resumed["steps"] == straight["steps"] == steps
    assert torch.load(checkpoint, weights_only=True)["step"] == steps
    assert resumed["metrics"] == straight["metrics"]
    # the training seconds add up over both invocations of the resumed run
    assert 0 < killed_seconds < resumed["train_seconds"] and 0 < straight["train_seconds"]
    assert torch.load(checkpoint, weights_only=True)["train_seconds"] == resumed["train_seconds"]


def test_eval_cli_reproduces_the_final_metrics(tmp_path: Path) -> None:
    subprocess.run(_cli(tmp_path, 2), check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-m", "vmtlib", "eval", "--run", str(tmp_path)],
                         check=True, capture_output=True, text=True).stdout
    final = json.loads((tmp_path / "final.json").read_text())
    assert json.loads(out)["metrics"] == final["metrics"]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    trainer = Trainer(TrainConfig(**{**TINY, "out": out, "steps": 3, "seed": rank * 0,
                                     "method": "vmt_adapter"}))
    draws = torch.rand(4)  # what the first augmentation or dropout mask would draw
    workers = trainer._loader(trainer.val_set, [[0]]).generator.initial_seed()
    result = trainer.fit()
    torch.save({"params": trainable_state(trainer.model), "metrics": result["metrics"],
                "draws": draws, "workers": workers}, Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_gloo_ranks_share_parameters_and_draw_their_own_randomness(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["params"].keys() == r1["params"].keys()
    for name, value in r0["params"].items():
        if "running_" in name or "num_batches" in name:
            continue  # BatchNorm statistics are per rank (not synchronised), like the papers'
        torch.testing.assert_close(value, r1["params"][name], rtol=0, atol=0, msg=name)
    assert r0["metrics"] == r1["metrics"]  # meters were summed across ranks
    # one model, but each rank its own augmentations, dropout masks and worker seeds
    assert not torch.equal(r0["draws"], r1["draws"]) and r0["workers"] != r1["workers"]
    moved = Trainer(TrainConfig(**{**TINY, "out": str(tmp_path / "fresh"), "steps": 3,
                                   "method": "vmt_adapter"})).model
    fresh = trainable_state(moved)
    assert any(not torch.equal(fresh[k], v) for k, v in r0["params"].items())
