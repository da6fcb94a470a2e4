"""The engine: exact resume after a real SIGKILL, NaN handling, accumulation, model kinds."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset
from train_cases import max_weight_diff, tiny_config, tiny_raw, write_config

from seqflow.train.engine import NonFiniteLossError, lr_lambda, train
from seqflow.train.inference import evaluate_run
from seqflow.train.models import build_flow
from seqflow.train.objectives import LikelihoodTask, TaskOutput
from seqflow.train.run_dir import load_run

ROOT = Path(__file__).resolve().parents[2]


def _log_steps(run: Path) -> list[dict]:
    path = run / "train_log.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # being written right now
    return [r for r in records if "loss" in r]


def _without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith("_per_s")} for r in records]


@pytest.mark.slow
def test_sigkill_at_an_arbitrary_step_then_resume_matches_uninterrupted(tmp_path):
    # 3 epochs of 32 steps, a checkpoint every 7 steps: the kill lands anywhere relative to them.
    raw = tiny_raw(max_steps=300, checkpoint_every=7, keep_checkpoints=2, eval_every=50,
                   log_every=1, input_noise=0.05)
    config = write_config(tmp_path / "tiny.yaml", raw)
    killed = tmp_path / "killed"
    kill_after = random.randint(20, 120)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "seqflow", "train", str(config),
                             "--out", str(killed)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        steps = _log_steps(killed)
        if steps and steps[-1]["step"] >= kill_after:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"the run ended before the kill at step {kill_after}: {proc.stderr.read().decode()}")
    assert not (killed / "final").exists()
    reached = _log_steps(killed)[-1]["step"]

    reference = tmp_path / "reference"
    train(tiny_config(**raw["train"]), reference)
    result = train(tiny_config(**raw["train"]), killed)
    assert result.resumed_from is not None
    resumed_step = int(result.resumed_from.name.split("_")[1])
    assert 0 < resumed_step <= reached
    for name in ("final/weights.safetensors",
                 "checkpoints/step_00000300/model.safetensors"):
        diff = max_weight_diff(reference / name, killed / name)
        assert diff <= 1e-6, f"{name}: killed after step {reached}, diff {diff}"
    # The log of the resumed run replays the same losses, without the steps lost in the kill.
    assert _without_timing(_log_steps(killed)) == _without_timing(_log_steps(reference))


class _PoisonAt(LikelihoodTask):
    """NLL, but the loss of optimizer step ``bad_step`` is NaN."""

    def __init__(self, bad_step: int):
        super().__init__(build_flow(tiny_config().model))
        self.bad_step = bad_step

    def forward(self, batch):
        out = super().forward(batch)
        if self.step == self.bad_step:
            return TaskOutput(out.loss * float("nan"), out.metrics)
        return out


def test_nonfinite_loss_stops_naming_step_and_rows(tmp_path):
    with pytest.raises(NonFiniteLossError) as err:
        train(tiny_config(max_steps=10), tmp_path / "run", task=_PoisonAt(3))
    message = str(err.value)
    assert "non-finite loss (nan) at step 3" in message
    assert "finite data" in message  # the data are finite: the message must not blame them
    assert "train.on_nonfinite=skip" in message


def test_nonfinite_loss_can_be_skipped_and_counted(tmp_path):
    run = tmp_path / "run"
    result = train(tiny_config(max_steps=10, on_nonfinite="skip"), run,
                   task=_PoisonAt(3))
    assert result.skipped == 1 and result.step == 10
    assert _log_steps(run)[-1]["skipped"] == 1
    flow, _, _ = load_run(run, "final")
    assert all(torch.isfinite(p).all() for p in flow.parameters())


class _NanGradientAt(LikelihoodTask):
    """A finite loss whose gradient is NaN at step ``bad_step`` (the torch.where pitfall)."""

    def __init__(self, bad_step: int):
        super().__init__(build_flow(tiny_config().model))
        self.bad_step = bad_step

    def forward(self, batch):
        out = super().forward(batch)
        if self.step != self.bad_step:
            return out
        weight = next(self.model.parameters())
        trap = torch.where(torch.tensor(False), torch.sqrt(-weight.abs() - 1).sum(), 0.0)
        return TaskOutput(out.loss + trap, out.metrics)


def test_nonfinite_gradient_with_finite_loss_is_caught(tmp_path):
    with pytest.raises(NonFiniteLossError, match="non-finite gradient norm .* at step 4"):
        train(tiny_config(max_steps=8), tmp_path / "a", task=_NanGradientAt(4))
    result = train(tiny_config(max_steps=8, on_nonfinite="skip"), tmp_path / "b",
                   task=_NanGradientAt(4))
    assert result.skipped == 1
    flow, _, _ = load_run(tmp_path / "b", "final")
    assert all(torch.isfinite(p).all() for p in flow.parameters())


def test_gradient_accumulation_equals_a_larger_batch(tmp_path):
    common = dict(max_steps=12, ema_decay=0.0)
    train(tiny_config(batch_size=16, grad_accum=2, **common), tmp_path / "accum")
    train(tiny_config(batch_size=32, **common), tmp_path / "big")
    diff = max_weight_diff(tmp_path / "accum/final/weights.safetensors",
                           tmp_path / "big/final/weights.safetensors")
    assert diff <= 1e-5


@pytest.mark.parametrize("kind", ["maf", "realnvp", "glow"])
def test_every_model_kind_trains_and_improves(tmp_path, kind):
    cfg = tiny_config(max_steps=40, eval_every=40)
    cfg.model.kind = kind
    run = tmp_path / kind
    result = train(cfg, run)
    first, last = _log_steps(run)[0]["nll"], _log_steps(run)[-1]["nll"]
    assert last < first, f"{kind}: train NLL {first} -> {last}"
    assert result.val["bits_per_dim"] == pytest.approx(result.val["nll"] / 2 / 0.6931471805599453)


def test_lr_schedule_warmup_then_cosine():
    f = lr_lambda(tiny_config(max_steps=10, warmup_steps=2, lr_schedule="cosine"))
    assert [round(f(s), 4) for s in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 0.5, 0.0]


def test_resume_refuses_a_different_model(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(max_steps=10), run)
    other = tiny_config(max_steps=20)
    other.model.hidden_features = 8
    with pytest.raises(ValueError, match="different model.hidden_features"):
        train(other, run)


def test_resume_drops_log_lines_cut_short_or_after_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(max_steps=10, checkpoint_every=5, log_every=5), run)
    shutil.rmtree(run / "checkpoints" / "step_00000010")
    shutil.rmtree(run / "final")
    with (run / "train_log.jsonl").open("a") as handle:
        handle.write('{"step": 11, "loss": 1.0}\n{"step": 12, "lo')  # a kill mid-write
    train(tiny_config(max_steps=10, checkpoint_every=5, log_every=5), run)
    assert [r["step"] for r in _log_steps(run)] == [5, 10]


def test_extending_a_finished_run_resumes_it(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(max_steps=10, lr_schedule="constant"), run)
    with pytest.warns(UserWarning, match="changed train.max_steps"):
        result = train(tiny_config(max_steps=20, lr_schedule="constant"), run)
    assert result.resumed_from.name == "step_00000010" and result.step == 20
    # The changed hyper-parameter is recorded, and the config that trained steps 1-10 is kept.
    record = json.loads((run / "config_changes.jsonl").read_text().splitlines()[0])
    assert record["step"] == 10 and record["changed"]["train.max_steps"] == {"old": 10,
                                                                              "new": 20}
    assert "max_steps: 10" in (run / "config.step_10.yaml").read_text()


def test_training_on_given_tensor_splits(tmp_path):
    cfg = tiny_config(max_steps=10)
    cfg.model.features = 3
    data = torch.randn(400, 3) * torch.tensor([1.0, 2.0, 0.5])
    splits = {"train": TensorDataset(data[:320]), "val": TensorDataset(data[320:])}
    result = train(cfg, tmp_path / "run", splits=splits)
    assert result.step == 10 and result.val["nll"] > 0
    with pytest.raises(ValueError, match="in-memory splits"):
        evaluate_run(tmp_path / "run")
    with pytest.raises(ValueError, match=r"split 'train': expected shape \(rows, 3\)"):
        train(cfg, tmp_path / "bad", splits={"train": TensorDataset(torch.randn(10, 2))})
