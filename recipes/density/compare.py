"""Density-estimation comparison: every classic flow side by side, several seeds, one budget.

Trains and evaluates, with the same optimizer (Adam), batch size and step budget for every
trained model, on the 2-D toy sets and on scikit-learn's 64-D digits (see
:func:`seqflow.data.tabular.load_digits_split`). Models: full-covariance Gaussian (closed-form
MLE), Gaussian KDE (bandwidth by validation), MADE, MADE MoG, RealNVP, Glow-style, MAF, MAF MoG,
and planar / radial stacks (2-D only). Every trained model goes through seqflow's one training
engine (:func:`seqflow.train.train` with ``flow=`` and in-memory ``splits=``): validation
log-likelihood every ``eval_every`` steps, early stopping (``train.patience``), and the best
validation weights are restored before testing.

Each (dataset, model, seed) trains in its own engine run directory
``OUT/runs/<dataset>/<model>/seed<seed>/`` and writes ``result.json`` there when done. A rerun
with the same ``--out`` reuses finished results and resumes unfinished runs from their last
checkpoint, so an interrupted comparison loses at most ``checkpoint_every`` steps of one run.

    python recipes/density/compare.py --steps 1500 --out runs/density \
        --results-json docs/results/density.json
    python recipes/density/compare.py --quick --out /tmp/density-quick   # seconds, for tests

``--results-json`` writes the raw results of docs/results/density.md (every record, the
settings, the command, machine, date and commit; ``make results`` turns them into the page's
tables) and puts the plots beside them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from baselines import FullCovGaussian, GaussianKDE  # noqa: E402
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from seqflow.data import SPLITS  # noqa: E402
from seqflow.data.tabular import load_digits_split  # noqa: E402
from seqflow.data.toy import sample_toy  # noqa: E402
from seqflow.distributions import Distribution, Flow, MADEMoG, StandardNormal  # noqa: E402
from seqflow.train import Config as EngineConfig
from seqflow.train import (  # noqa: E402
    config_from_dict,
    load_weights,
    provenance,
    write_json_atomic,
)
from seqflow.train import train as engine_train  # noqa: E402
from seqflow.transforms import MAF, Compose, Planar, Radial  # noqa: E402
from seqflow.transforms.stacks import glow_steps, realnvp_steps  # noqa: E402

TOY_SETS = ["moons", "8gaussians", "checkerboard", "pinwheel"]
ALL_MODELS = ["gaussian", "kde", "made", "made_mog", "realnvp", "glow", "maf", "maf_mog",
              "planar", "radial"]
TWO_D_ONLY = {"planar", "radial"}
UNTRAINED = {"gaussian", "kde"}


@dataclass
class Data:
    name: str
    train: Tensor
    val: Tensor
    test: Tensor
    note: str


@dataclass
class Config:
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    eval_every: int = 50
    patience: int = 10  # evaluations without validation improvement before stopping
    grad_clip: float = 10.0
    checkpoint_every: int = 500  # rare: a checkpoint costs more than many steps of a small flow
    hidden_2d: int = 64
    hidden_tabular: int = 64
    flow_layers: int = 5
    toy_rows: tuple[int, int, int] = (10000, 2000, 5000)
    plot_grid: int = 120
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


def load_data(name: str, cfg: Config) -> Data:
    if name == "digits":
        split = load_digits_split(seed=0)
        return Data(name, split.train, split.val, split.test, split.description)
    n_train, n_val, n_test = cfg.toy_rows
    # Disjoint seeds: the three splits are independent draws from the generator.
    return Data(name, sample_toy(name, n_train, seed=1000), sample_toy(name, n_val, seed=2000),
                sample_toy(name, n_test, seed=3000),
                f"{name}: {n_train}/{n_val}/{n_test} generated rows train/val/test")


def build_model(name: str, features: int, cfg: Config, seed: int) -> Distribution:
    """A fresh model; every flow uses a standard normal base unless noted."""
    hidden = cfg.hidden_2d if features == 2 else cfg.hidden_tabular
    K = cfg.flow_layers
    base = StandardNormal(features)
    orders = ["natural", "reversed"]
    if name == "gaussian":
        return FullCovGaussian(features)
    if name == "kde":
        return GaussianKDE(features)
    if name == "made":  # the MAF paper's "MADE": one Gaussian-conditional MADE = a 1-layer MAF
        return Flow(MAF(features, hidden_features=hidden), base)
    if name == "made_mog":
        return MADEMoG(features, components=10, hidden_features=hidden, seed=seed)
    if name in ("maf", "maf_mog"):
        layers = [MAF(features, hidden_features=hidden, order=orders[i % 2]) for i in range(K)]
        if name == "maf":
            return Flow(Compose(layers), base)
        return Flow(Compose(layers), MADEMoG(features, components=10, hidden_features=hidden))
    if name == "realnvp":
        return Flow(realnvp_steps(features, 2 * K, hidden), base)
    if name == "glow":
        return Flow(glow_steps(features, K, hidden), base)
    if name == "planar":
        return Flow(Compose([Planar(features, newton_steps=20) for _ in range(2 * K)]), base)
    if name == "radial":
        return Flow(Compose([Radial(features) for _ in range(2 * K)]), base)
    raise ValueError(f"unknown model {name!r}; choose from {ALL_MODELS}")


@torch.no_grad()
def mean_log_prob(model: Distribution, x: Tensor, chunk: int = 2048) -> float:
    model.eval()
    total = sum(float(model.log_prob(part).sum()) for part in x.split(chunk))
    return total / len(x)


def engine_config(data: Data, cfg: Config, seed: int) -> EngineConfig:
    """The engine settings of one trained model: Adam (AdamW without weight decay), constant
    learning rate, no EMA, quiet (no tracker, no progress bar), one CPU thread."""
    return config_from_dict({
        "model": {"features": data.train.shape[1]},
        "data": {"name": data.name},  # recorded only: the splits are given in memory
        "train": {
            "max_steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr,
            "lr_schedule": "constant", "weight_decay": 0.0, "grad_clip": cfg.grad_clip,
            "ema_decay": 0.0, "seed": seed, "eval_every": cfg.eval_every,
            "patience": cfg.patience, "checkpoint_every": cfg.checkpoint_every,
            "keep_checkpoints": 1, "log_every": cfg.eval_every, "log_with": "none",
            "progress": False, "cpu_threads": 1, "mixed_precision": "no",
        },
    })


def train(model: nn.Module, data: Data, cfg: Config, seed: int, run_dir: Path) -> dict:
    """Train ``model`` in place through the engine (resuming ``run_dir`` if it holds a
    checkpoint), then load its best-validation weights; returns stats."""
    splits = {name: TensorDataset(getattr(data, name)) for name in SPLITS}
    result = engine_train(engine_config(data, cfg, seed), run_dir, splits=splits, flow=model)
    info = load_weights(run_dir, model, "best")
    return {"steps_run": result.step, "best_step": info["step"], "val": -info["val"]["nll"],
            "resumed": result.resumed_from is not None}


def count_parameters(model: Distribution) -> int:
    """Trainable parameters; the Gaussian counts mean + covariance, the KDE its stored rows."""
    if isinstance(model, FullCovGaussian):
        d = model.shape[0]
        return d + d * (d + 1) // 2
    if isinstance(model, GaussianKDE):
        return model.points.numel() + 1  # + the bandwidth
    return sum(p.numel() for p in model.parameters())


# Train sections that only the distillation and variational tasks read: a likelihood run is the
# same run whatever they hold (records written before they existed lack them).
OTHER_TASKS = ("distill", "variational")


def run_dir_of(out: Path, data: Data, model_name: str, seed: int) -> Path:
    return out / "runs" / data.name / model_name / f"seed{seed}"


def run_one(model_name: str, data: Data, cfg: Config, seed: int,
            out: Path) -> tuple[dict, Distribution]:
    """Fit or train one model, or reuse the finished result of an earlier invocation."""
    torch.manual_seed(seed)
    features = data.train.shape[1]
    model = build_model(model_name, features, cfg, seed)
    run_dir = run_dir_of(out, data, model_name, seed)
    done = run_dir / "result.json"
    if model_name not in UNTRAINED and done.is_file():
        saved = json.loads(done.read_text())
        wanted = asdict(engine_config(data, cfg, seed).train)
        changed = sorted(k for k in wanted if k not in OTHER_TASKS
                         and saved["engine_train"].get(k) != wanted[k])
        if changed:
            raise ValueError(f"{done} was trained with other settings ({', '.join(changed)}); "
                             "rerun with the same options or choose another --out")
        load_weights(run_dir, model, "best")
        return {**saved["record"], "reused": True}, model
    start = time.perf_counter()
    if model_name == "gaussian":
        model.fit(data.train)
        stats = {"steps_run": 0, "best_step": 0, "val": mean_log_prob(model, data.val)}
    elif model_name == "kde":
        bandwidth = model.fit(data.train, data.val)
        stats = {"steps_run": 0, "best_step": 0, "val": mean_log_prob(model, data.val),
                 "bandwidth": bandwidth}
    else:
        stats = train(model, data, cfg, seed, run_dir)
    seconds = time.perf_counter() - start
    test = mean_log_prob(model, data.test)
    params = count_parameters(model)
    record = {"model": model_name, "dataset": data.name, "seed": seed, "test": test,
              "params": params, "train_seconds": seconds, **stats}
    if model_name not in UNTRAINED:
        write_json_atomic({"record": record,
                           "engine_train": asdict(engine_config(data, cfg, seed).train)}, done)
    return record, model


def plot_dataset(data: Data, models: dict[str, Distribution], path: Path, cfg: Config) -> None:
    """True density (histogram of many draws), learned density and samples for every model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lim = 4.5
    edges = torch.linspace(-lim, lim, cfg.plot_grid + 1)
    centers = 0.5 * (edges[1:] + edges[:-1])
    gx, gy = torch.meshgrid(centers, centers, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    columns = ["true", *models]
    fig, axes = plt.subplots(2, len(columns), figsize=(2.1 * len(columns), 4.4), squeeze=False)
    truth = sample_toy(data.name, 200000, seed=4000)
    for col, name in enumerate(columns):
        if name == "true":
            dens, _ = torch.histogramdd(truth, bins=[edges, edges], density=True)
            density = dens.T
            samples = truth[:20000]
        else:
            model = models[name].eval()
            with torch.no_grad():
                density = torch.cat([model.log_prob(p) for p in grid.split(4096)]).exp()
                density = density.reshape(cfg.plot_grid, cfg.plot_grid)
                samples = model.sample(20000)
        axes[0, col].imshow(density.numpy(), origin="lower", extent=(-lim, lim, -lim, lim),
                            cmap="magma")
        sdens, _ = torch.histogramdd(samples.float().clamp(-lim, lim),
                                        bins=[edges, edges], density=True)
        axes[1, col].imshow(sdens.T.numpy(), origin="lower", extent=(-lim, lim, -lim, lim),
                            cmap="magma")
        axes[0, col].set_title(name, fontsize=9)
        for row in range(2):
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
    axes[0, 0].set_ylabel("density")
    axes[1, 0].set_ylabel("samples")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def summarize(results: list[dict]) -> dict[tuple[str, str], dict]:
    grouped: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        grouped.setdefault((r["dataset"], r["model"]), []).append(r)
    summary = {}
    for key, runs in grouped.items():
        tests = [r["test"] for r in runs]
        summary[key] = {
            "mean": statistics.fmean(tests),
            "std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
            "seeds": len(tests),
            "params": runs[0]["params"],
            "seconds": statistics.fmean(r["train_seconds"] for r in runs),
            "best_step": statistics.fmean(r["best_step"] for r in runs),
        }
    return summary


def markdown(results: list[dict], datasets: list[Data], models: list[str], cfg: Config,
             command: str, plots: dict[str, str], wall: float, date: str) -> str:
    summary = summarize(results)
    names = [d.name for d in datasets]
    reused = sum(r.get("reused", False) for r in results)
    resumed = sum(r.get("resumed", False) for r in results)
    lines = [
        "# Density estimation: test log-likelihood",
        "",
        f"Command: `{command}`  ",
        "Machine: 2-core CPU, no GPU, shared with other engineers' jobs (timings are indicative); "
        "`torch.set_num_threads(1)`.  ",
        f"Date: {date}. Total wall time of the run: {wall / 60:.1f} min"
        + (f" ({reused} of {len(results)} results reused from an earlier invocation, "
           f"{resumed} resumed from a checkpoint)." if reused or resumed else "."),
        "",
        "Test average log-likelihood in nats per row (higher is better), mean ± std over "
        f"{len(cfg.seeds)} seeds ({', '.join(map(str, cfg.seeds))}); the seed sets initialization "
        "and mini-batches, the data split is fixed. Trained models go through seqflow's training "
        "engine (`seqflow.train.train(cfg, out, flow=model, splits=...)`, one run directory "
        "per model and seed): Adam (AdamW, weight decay 0), constant lr "
        f"{cfg.lr}, gradient-norm clip {cfg.grad_clip}, batch {cfg.batch_size} (per-epoch "
        f"permutations seeded by the seed), at most {cfg.steps} steps, validation every "
        f"{cfg.eval_every} steps, early stopping (`train.patience`) after {cfg.patience} "
        "evaluations without improvement, best-validation weights restored. The Gaussian is the "
        "closed-form MLE; the KDE bandwidth is chosen on the validation split (its parameter "
        "count is its stored training rows). Planar/radial run on 2-D only. Widths: MADE hidden "
        f"{cfg.hidden_2d} (2-D) / {cfg.hidden_tabular} (digits), two hidden layers; "
        f"{cfg.flow_layers} MAF layers (orders alternating natural/reversed), "
        f"{2 * cfg.flow_layers} RealNVP couplings, {cfg.flow_layers} Glow steps, "
        f"{2 * cfg.flow_layers} planar or radial layers; MoG bases have 10 components.",
        "",
        "| model | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for m in models:
        cells = []
        for d in names:
            s = summary.get((d, m))
            cells.append("—" if s is None else f"{s['mean']:.3f} ± {s['std']:.3f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "## Parameters, training time and early stopping", "",
              "Training time is the mean over seeds of fit/training wall-clock (seconds), "
              "including validation passes; `best step` is the mean step of the restored "
              "weights.", ""]
    for d in datasets:
        lines += [f"### {d.name}", "", d.note, "",
                  "| model | test LL | params | train s | best step |", "|---|---|---|---|---|"]
        for m in models:
            s = summary.get((d.name, m))
            if s is not None:
                lines.append(f"| {m} | {s['mean']:.3f} ± {s['std']:.3f} | {s['params']:,} | "
                             f"{s['seconds']:.1f} | {s['best_step']:.0f} |")
        if d.name in plots:
            lines += ["", f"![{d.name}]({plots[d.name]})",
                      "Top: density (true = histogram of 200k draws); bottom: 20k samples "
                      "(seed-0 models)."]
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/density"))
    parser.add_argument("--results-md", type=Path, default=None,
                        help="write the markdown report here (plots go beside it)")
    parser.add_argument("--results-json", type=Path, default=None,
                        help="write the raw results here (records, settings, command, machine, "
                        "date, commit); plots go beside it")
    parser.add_argument("--datasets", nargs="+", default=[*TOY_SETS, "digits"])
    parser.add_argument("--models", nargs="+", default=ALL_MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="step budget (default 2000)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budget on two moons with the Gaussian and MAF (tests)")
    parser.add_argument("--no-plots", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(1)
    started_at = provenance(["python", "recipes/density/compare.py", *argv], Path(__file__).parent)
    cfg = Config(seeds=args.seeds)
    if args.quick:
        args.datasets, args.models, cfg.seeds = ["moons"], ["gaussian", "maf"], [0]
        cfg.steps, cfg.eval_every, cfg.toy_rows, cfg.flow_layers = 300, 100, (2000, 500, 1000), 3
        cfg.hidden_2d, cfg.plot_grid = 32, 40
    if args.steps is not None:
        cfg.steps = args.steps
    unknown = sorted(set(args.models) - set(ALL_MODELS))
    if unknown:
        raise ValueError(f"unknown models {unknown}; choose from {ALL_MODELS}")
    started = time.perf_counter()
    datasets = [load_data(name, cfg) for name in args.datasets]
    results: list[dict] = []
    plot_paths: dict[str, str] = {}
    plot_dir = (args.results_json.parent if args.results_json
                else args.results_md.parent if args.results_md else args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    for data in datasets:
        kept: dict[str, Distribution] = {}
        for model_name in args.models:
            if model_name in TWO_D_ONLY and data.train.shape[1] != 2:
                continue
            for seed in cfg.seeds:
                record, model = run_one(model_name, data, cfg, seed, args.out)
                results.append(record)
                print(json.dumps(record), flush=True)
                if seed == cfg.seeds[0]:
                    kept[model_name] = model
        if data.train.shape[1] == 2 and not args.no_plots:
            path = plot_dir / f"density_{data.name}.png"
            plot_dataset(data, kept, path, cfg)
            plot_paths[data.name] = path.name
    wall = time.perf_counter() - started
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    report = markdown(results, datasets, args.models, cfg, started_at["command"], plot_paths,
                      wall, started_at["date"])
    (args.out / "results.md").write_text(report)
    if args.results_md:
        args.results_md.parent.mkdir(parents=True, exist_ok=True)
        args.results_md.write_text(report)
    if args.results_json:
        write_json_atomic({**started_at, "wall_seconds": wall, "settings": asdict(cfg),
                           "datasets": {d.name: d.note for d in datasets},
                           "models": args.models,
                           "records": [{k: v for k, v in r.items() if k != "reused"}
                                       for r in results]}, args.results_json)
    return results


if __name__ == "__main__":
    main()
