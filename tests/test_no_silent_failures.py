"""Regression tests of issue 9: faults, bad input and reloads end loudly, never in a wrong answer.

(Items 1, 2, 8 and 9 are covered in tests/nn/test_made.py, tests/train/test_checkpoint_faults.py,
tests/train/test_config_parsing.py and tests/train/test_batches_and_datasets.py.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from train_cases import tiny_config, tiny_raw

from seqflow import (
    MAF,
    AffineCoupling,
    Compose,
    Flow,
    Reverse,
    SequenceIAF,
    SequenceMAF,
    SequenceStack,
    StandardNormal,
)
from seqflow.data.sources import write_sample_chunks
from seqflow.nn import SequenceContext
from seqflow.train import NonFiniteLossError, train
from seqflow.train.inference import evaluate_run, sample_chunks
from seqflow.train.models import build_flow
from seqflow.train.objectives import LikelihoodTask, TaskOutput

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


# --- item 3: NaN runs never end with exit status 0 ------------------------------------------
class _PoisonWeightsAt(LikelihoodTask):
    """From optimizer step ``bad_step`` on, the loss is finite but its gradient is NaN-free
    garbage that turns the weights into NaN (a silent overflow)."""

    def __init__(self, bad_step: int):
        super().__init__(build_flow(tiny_config().model))
        self.bad_step = bad_step

    def forward(self, batch):
        out = super().forward(batch)
        if self.step >= self.bad_step:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))
        return out


def test_skip_mode_cannot_finish_with_nan_weights(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"(not finite|non-finite|nll is nan) at step \d+"):
        train(tiny_config(max_steps=12, on_nonfinite="skip", max_skips=100), tmp_path / "run",
              task=_PoisonWeightsAt(3))
    assert not (tmp_path / "run" / "final").exists()


class _AlwaysNan(LikelihoodTask):
    def __init__(self):
        super().__init__(build_flow(tiny_config().model))

    def forward(self, batch):
        out = super().forward(batch)
        return TaskOutput(out.loss * float("nan"), out.metrics)


def test_consecutive_skips_are_bounded(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"4 non-finite steps in a row .*max_skips=3"):
        train(tiny_config(max_steps=20, on_nonfinite="skip", max_skips=3), tmp_path / "run",
              task=_AlwaysNan())


def test_eval_and_sample_refuse_non_finite_weights(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(max_steps=10), run)
    weights = run / "best" / "weights.safetensors"
    state = load_file(str(weights))
    first = sorted(k for k in state if state[k].is_floating_point())[0]
    state[first] = torch.full_like(state[first], float("nan"))
    save_file(state, str(weights))
    manifest = run / "best" / "MANIFEST.json"
    if manifest.exists():  # keep the directory verifiable: the weights are the problem here
        from seqflow.train.checkpoints import seal
        manifest.unlink()
        seal(run / "best")
    with pytest.raises(ValueError, match="weights are not finite"):
        evaluate_run(run, "test", "best")
    with pytest.raises(ValueError, match="weights are not finite"):
        list(sample_chunks(run, 10, weights="best"))


# --- item 4: eval never silently re-splits a changed file -------------------------------------
def test_eval_uses_the_recorded_file_from_any_directory_and_refuses_a_changed_one(tmp_path,
                                                                                   monkeypatch):
    data = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    np.savetxt(data, rng.normal(size=(400, 2)), delimiter=",")
    monkeypatch.chdir(tmp_path)
    raw = tiny_raw(max_steps=5)
    raw["data"] = {"source": "csv", "path": "data.csv", "val_fraction": 0.1,
                   "test_fraction": 0.1}
    from seqflow.train.config import config_from_dict
    run = tmp_path / "runs" / "r"
    train(config_from_dict(raw), run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    first = evaluate_run(run, "test")  # a relative data.path, resolved through the record
    assert first["items"] == 40
    np.savetxt(data, rng.normal(size=(400, 2)), delimiter=",")
    with pytest.raises(ValueError, match="changed since .* test split would differ"):
        evaluate_run(run, "test")


# --- item 5: SIGTERM saves a checkpoint and names the safe step ------------------------------
@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_run_resumes(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_raw(max_steps=100000, checkpoint_every=100000,
                                              eval_every=100000, log_every=5)))
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "seqflow", "train", str(config), "--out",
                             str(run)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while not (run / "train_log.jsonl").is_file() or not (run / "train_log.jsonl").read_text():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = [x for x in err.splitlines() if "SIGTERM received" in x]
    assert line, err
    step = int(line[0].split("stopped after step ")[1].split(",")[0])
    assert (run / "checkpoints" / f"step_{step:08d}").is_dir()
    state = json.loads((run / "checkpoints" / f"step_{step:08d}" / "trainer_state.json")
                       .read_text())
    assert state["step"] == step


# --- item 6: degenerate and wrong inputs give one-line errors naming the argument ------------
def _seq(cls=SequenceMAF, **kw):
    return cls(1, residual_channels=4, skip_channels=4, blocks=2, **kw)


@pytest.mark.parametrize("call, match", [
    (lambda: MAF(3)(torch.zeros(0, 3)), "empty batch"),
    (lambda: Flow(MAF(3), StandardNormal(3)).sample(0), "num_samples must be a positive int"),
    (lambda: _seq()(torch.zeros(1, 1, 0)), "empty sequence"),
    (lambda: _seq().inverse(torch.zeros(1, 1, 0)), "empty sequence"),
    (lambda: _seq(SequenceIAF)(torch.zeros(1, 1, 0)), "empty sequence"),
    (lambda: _seq(SequenceIAF).inverse(torch.zeros(1, 1, 0)), "empty sequence"),
    (lambda: _seq().sequential(torch.zeros(1, 1, 4), history=torch.zeros(1, 1, 0)),
     "history must be a non-empty"),
    (lambda: MAF(3)(torch.zeros(2, 3, dtype=torch.bfloat16)), "float32 or float64.*bfloat16"),
    (lambda: MAF(3)(torch.zeros(2, 3, dtype=torch.long)), "float32 or float64.*int64"),
    (lambda: MAF(3)(np.zeros((2, 3), dtype=np.float32)), "expected a torch.Tensor, got ndarray"),
    (lambda: _seq()(torch.zeros(2, 1, 8, dtype=torch.bfloat16)), "bfloat16"),
    (lambda: _seq(cond_channels=2)(torch.zeros(1, 1, 4),
                                   torch.full((1, 2, 4), float("nan"))),
     "local features have 8 non-finite"),
    (lambda: _seq().sequential(torch.zeros(1, 1, 4),
                               history=torch.full((1, 1, 3), float("inf"))),
     "history has 3 non-finite"),
    (lambda: _seq(num_global_ids=3)(torch.zeros(2, 1, 4), torch.tensor([1, 3])),
     "global id 3 is out of range for num_global_ids=3"),
    (lambda: _seq(num_global_ids=3)(torch.zeros(2, 1, 4), torch.tensor([-1, 0])),
     "global id -1 is out of range"),
    (lambda: SequenceMAF(0), "channels must be > 0, got 0"),
    (lambda: SequenceMAF(1, blocks=0), "blocks must be > 0, got 0"),
    (lambda: SequenceMAF(1, residual_channels=-2), "residual_channels must be > 0, got -2"),
    (lambda: MAF(3, hidden_features=0), "hidden_features must be > 0, got 0"),
    (lambda: SequenceMAF(1, upsample_factor=4), "upsample_factor=4 needs cond_channels"),
    (lambda: SequenceStack([_seq(), SequenceMAF(2, residual_channels=4, skip_channels=4,
                                                blocks=2)]), "different channel counts"),
    (lambda: SequenceMAF(1, conditioner="lstm", residual_channels=8),
     r"\['residual_channels'\] are not options of the 'lstm' conditioner"),
    (lambda: SequenceMAF(1, conditioner="wavenet", head_features=8),
     r"\['head_features'\] are not options of the 'wavenet' conditioner"),
    (lambda: SequenceMAF(1, conditioner="gru"), "conditioner must be 'wavenet', 'lstm'"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


# --- item 7: sampling keeps no autograd graph; huge --num-samples streams to disk -----------------
def test_sequence_sampling_keeps_no_graph_unless_reparameterized():
    flow = Flow(_seq(), StandardNormal(1))
    assert not flow.sample(2, length=16).requires_grad
    assert flow.rsample(2, length=16).requires_grad


def test_sample_chunks_stream_to_npy_equal_to_one_draw(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(max_steps=5), run)
    out = tmp_path / "s.npy"
    shape = write_sample_chunks(sample_chunks(run, 10, seed=3, chunk=4), 10, out)
    assert shape == (10, 2)
    whole = torch.cat(list(sample_chunks(run, 10, seed=3, chunk=4))).numpy()
    np.testing.assert_array_equal(np.load(out), whole)
    assert not list(tmp_path.glob(".s.npy.tmp*"))


# --- item 10: torch.compile of log_prob with the default arguments ---------------------------
def test_compiled_log_prob_has_no_graph_break():
    flow = Flow(Compose([MAF(3, hidden_features=8), Reverse(3), AffineCoupling(3)]),
                StandardNormal(3)).eval()
    x = torch.randn(4, 3)
    compiled = torch.compile(flow.log_prob, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x.clone()[:, :]), flow.log_prob(x))


# --- item 11: under accelerate launch only the main process prints an error -----------------
def test_non_main_process_exits_2_without_printing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lr: -1}\n")
    quiet = subprocess.run([sys.executable, "-m", "seqflow", "train", str(bad)],
                           env={**ENV, "RANK": "1"}, capture_output=True, text=True)
    loud = subprocess.run([sys.executable, "-m", "seqflow", "train", str(bad)],
                          env={**ENV, "RANK": "0"}, capture_output=True, text=True)
    assert quiet.returncode == loud.returncode == 2
    assert quiet.stderr == "" and loud.stderr.count("\n") == 1 and "train.lr" in loud.stderr


def test_metrics_json_is_never_written_with_nan(tmp_path):
    from seqflow.train.checkpoints import write_json_atomic
    with pytest.raises(ValueError, match="non-finite numbers as JSON"):
        write_json_atomic({"nll": float("nan")}, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_sequence_context_must_match(tmp_path):
    maf = _seq(cond_channels=2, upsample_factor=2)
    with pytest.raises(ValueError, match=r"upsample to 8 samples, but the sequence has 6"):
        maf(torch.zeros(1, 1, 6), SequenceContext(torch.zeros(1, 2, 4)))
