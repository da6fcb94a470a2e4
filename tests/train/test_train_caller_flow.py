"""The engine trains caller-built flows (``flow=``) and stops early on ``train.patience``."""

from __future__ import annotations

import json

import pytest
import torch
from train_cases import max_weight_diff, tiny_config

from seqflow import cli
from seqflow.distributions import Flow, MADEMoG, StandardNormal
from seqflow.train.config import ConfigError
from seqflow.train.datasets import build_splits
from seqflow.train.engine import train
from seqflow.train.models import build_flow
from seqflow.train.objectives import LikelihoodTask, TaskOutput
from seqflow.train.run_dir import load_weights
from seqflow.transforms import ActNorm, AffineCoupling, Compose


def _glow_like(seed: int, features: int = 2) -> Flow:
    torch.manual_seed(seed)
    layers = [ActNorm(features), AffineCoupling(features, hidden_features=16),
              AffineCoupling(features, parity=1, hidden_features=16)]
    return Flow(Compose(layers), StandardNormal(features))


def _mog(seed: int) -> MADEMoG:
    torch.manual_seed(seed)
    return MADEMoG(2, components=3, hidden_features=16)


@pytest.mark.parametrize("build", [_glow_like, _mog], ids=["flow", "made_mog"])
def test_caller_built_model_trains_and_its_best_weights_reload(tmp_path, build):
    run = tmp_path / "run"
    model = build(0)
    result = train(tiny_config(max_steps=40, eval_every=10), run, flow=model)
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    losses = [r["nll"] for r in log if "nll" in r]
    assert losses[-1] < losses[0] - 0.05, losses
    assert (run / "CALLER_FLOW").is_file()
    assert "kind: custom" in (run / "config.yaml").read_text()

    fresh = build(1)
    info = load_weights(run, fresh, "best")
    best = json.loads((run / "best" / "info.json").read_text())
    assert info["weights"] == "best" and info["step"] == best["step"]
    val = build_splits(tiny_config())["val"].rows
    with torch.no_grad():
        mean_nll = float(-fresh.log_prob(val).double().mean())
    assert mean_nll == pytest.approx(best["val"]["nll"], rel=1e-6)
    assert result.val["nll"] >= best["val"]["nll"]


class _CrashAt(LikelihoodTask):
    """NLL that raises at optimizer step ``step``, as a killed process would stop there."""

    def __init__(self, flow, step: int):
        super().__init__(flow)
        self.crash_step = step

    def forward(self, batch):
        if self.step == self.crash_step:
            raise KeyboardInterrupt
        return super().forward(batch)


def test_interrupted_caller_flow_run_resumes_to_the_uninterrupted_weights(tmp_path):
    settings = dict(max_steps=20, checkpoint_every=5, input_noise=0.05, ema_decay=0.9)
    train(tiny_config(**settings), tmp_path / "reference", flow=_glow_like(0))
    with pytest.raises(KeyboardInterrupt):
        flow = _glow_like(0)
        train(tiny_config(**settings), tmp_path / "run", task=_CrashAt(flow, 13), flow=flow)
    assert not (tmp_path / "run" / "final").exists()
    # A flow with other initial weights: the checkpoint's weights (and ActNorm state) win.
    result = train(tiny_config(**settings), tmp_path / "run", flow=_glow_like(7))
    assert result.resumed_from.name == "step_00000010" and result.step == 20
    for name in ("final/weights.safetensors", "best/weights.safetensors",
                 "checkpoints/step_00000020/model.safetensors"):
        diff = max_weight_diff(tmp_path / "reference" / name, tmp_path / "run" / name)
        assert diff <= 1e-6, f"{name}: {diff}"


def test_resume_refuses_another_architecture_or_a_config_built_run(tmp_path):
    train(tiny_config(max_steps=5), tmp_path / "custom", flow=_glow_like(0))
    with pytest.raises(ValueError, match="holds a run of Flow with .* another architecture"):
        train(tiny_config(max_steps=10), tmp_path / "custom", flow=_mog(0))
    train(tiny_config(max_steps=5), tmp_path / "built")
    with pytest.raises(ValueError, match="different model.kind"):
        train(tiny_config(max_steps=10), tmp_path / "built", flow=_glow_like(0))


def test_feature_count_mismatch_names_both(tmp_path):
    with pytest.raises(ValueError, match=r"event shape \(3,\) but model.features=2"):
        train(tiny_config(), tmp_path / "a", flow=_glow_like(0, features=3))

    class Plain(torch.nn.Module):  # not a seqflow Distribution: probed with a zero batch
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(3))

        def log_prob(self, x):
            return -(x * self.weight).sum(dim=1)

    with pytest.raises(ValueError, match=r"fails on a \(2, 2\) batch of model.features=2"):
        train(tiny_config(), tmp_path / "b", flow=Plain())
    with pytest.raises(ValueError, match="nn.Module with a log_prob"):
        train(tiny_config(), tmp_path / "c", flow=torch.nn.Linear(2, 2))
    assert not (tmp_path / "a").exists()


def test_eval_and_sample_cli_refuse_a_caller_flow_run(tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny_config(max_steps=5), run, flow=_glow_like(0))
    for argv in (["eval", str(run)], ["sample", str(run), "--num-samples", "4", "--out",
                                      str(tmp_path / "s.npy")]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"seqflow {argv[0]}: error: "), err
        assert "caller-built flow" in err[0] and "cannot rebuild" in err[0]
    # seqflow train cannot build it either: one line, not a traceback.
    assert cli.main(["train", str(run / "config.yaml"), "--out", str(tmp_path / "x")]) == 2
    assert "model.kind=custom" in capsys.readouterr().err


class _Ascent(LikelihoodTask):
    """Maximizes the NLL: every validation check after the first is worse."""

    def __init__(self):
        super().__init__(build_flow(tiny_config().model))

    def forward(self, batch):
        out = super().forward(batch)
        return TaskOutput(-out.loss, out.metrics)


def test_patience_stops_early_and_resume_keeps_the_count(tmp_path):
    run = tmp_path / "run"
    settings = dict(max_steps=60, eval_every=5, checkpoint_every=5, lr_schedule="constant")
    result = train(tiny_config(patience=2, **settings), run, task=_Ascent())
    assert result.stopped_early and result.step == 15  # evals at 10 and 15 are worse than at 5
    assert json.loads((run / "best" / "info.json").read_text())["step"] == 5
    again = train(tiny_config(patience=2, **settings), run, task=_Ascent())
    assert again.step == 15 and again.stopped_early  # a finished early stop stays finished
    # The count of bad evaluations survives the resume: one more (at 20) exhausts patience 3.
    longer = train(tiny_config(patience=3, **settings), run, task=_Ascent())
    assert longer.step == 20 and longer.stopped_early
    off = train(tiny_config(max_steps=20, eval_every=5, patience=0), tmp_path / "off",
                task=_Ascent())
    assert off.step == 20 and not off.stopped_early
    with pytest.raises(ConfigError, match="train.patience: must be >= 0"):
        tiny_config(patience=-1)
