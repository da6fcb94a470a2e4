"""Flows fitted to the four unnormalized 2-D densities of Rezende & Mohamed (2015, table 1).

Each flow ``q`` (planar with K = 2, 8, 32 layers, radial with 16, IAF with 4; a learnable
diagonal-Gaussian base) is fitted to ``p(z) = exp(-U(z)) / Z`` by minimizing the reverse KL
through seqflow's engine (:class:`seqflow.train.objectives.ReverseKLTask`, the energy annealed
from ``beta = 0.01`` to 1), and scored by ``KL(q || p)`` with ``log Z`` from a fine grid. Writes one
figure (true density and every ``q``) and a Markdown table:

    python recipes/vae/potentials.py --out runs/potentials \
        --results-json docs/results/vi_potentials.json
    python recipes/vae/potentials.py --quick --out /tmp/pot-quick   # seconds, for tests

``--results-json`` writes the raw results of docs/results/vi_potentials.md (every record, the
settings, ``log Z``, the command, machine, date and commit; ``make results`` turns them into the
page's table) and puts the figure beside them.

U2-U4 as printed in the paper do not decay along ``z1`` (their only ``z1`` dependence is
through the bounded ``w1, w2, w3``), so ``exp(-U)`` has no finite integral; the paper shows them
on ``[-4, 4]^2``. Here they get a wall that confines ``z1`` to that window,
``edge(z) = ((|z1| - 4)_+ / 0.2)^2 / 2``, which leaves the density inside it unchanged. U1
(a ring) is normalizable as printed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from seqflow import DiagonalNormal, Flow
from seqflow.train import (
    ReverseKLTask,
    SampleSlots,
    config_from_dict,
    load_weights,
    log_normalizer_on_grid,
    provenance,
    reusable_result,
    reverse_kl,
    write_json_atomic,
)
from seqflow.train import train as engine_train
from seqflow.transforms import IAF, Compose, Planar, Radial, Reverse, Transform


def _w1(z: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * z[:, 0] / 4)


def _w2(z: Tensor) -> Tensor:
    return 3 * torch.exp(-0.5 * ((z[:, 0] - 1) / 0.6) ** 2)


def _w3(z: Tensor) -> Tensor:
    return 3 * torch.sigmoid((z[:, 0] - 1) / 0.3)


def _edge(z: Tensor) -> Tensor:
    """The wall that makes U2-U4 normalizable: zero on ``|z1| <= 4``."""
    return 0.5 * (torch.relu(z[:, 0].abs() - 4) / 0.2) ** 2


def _neg_logsumexp(a: Tensor, b: Tensor) -> Tensor:
    return -torch.logsumexp(torch.stack([a, b]), dim=0)


def u1(z: Tensor) -> Tensor:
    ring = 0.5 * ((z.norm(dim=1) - 2) / 0.4) ** 2
    return ring + _neg_logsumexp(-0.5 * ((z[:, 0] - 2) / 0.6) ** 2,
                                 -0.5 * ((z[:, 0] + 2) / 0.6) ** 2)


def u2(z: Tensor) -> Tensor:
    return 0.5 * ((z[:, 1] - _w1(z)) / 0.4) ** 2 + _edge(z)


def u3(z: Tensor) -> Tensor:
    d = z[:, 1] - _w1(z)
    return _neg_logsumexp(-0.5 * (d / 0.35) ** 2, -0.5 * ((d + _w2(z)) / 0.35) ** 2) + _edge(z)


def u4(z: Tensor) -> Tensor:
    d = z[:, 1] - _w1(z)
    return _neg_logsumexp(-0.5 * (d / 0.4) ** 2, -0.5 * ((d + _w3(z)) / 0.35) ** 2) + _edge(z)


POTENTIALS: dict[str, Callable[[Tensor], Tensor]] = {"U1": u1, "U2": u2, "U3": u3, "U4": u4}


def _iaf(layers: int, hidden: int) -> list[Transform]:
    out: list[Transform] = []
    for i in range(layers):
        if i:
            out.append(Reverse(2))
        out.append(IAF(2, hidden_features=hidden))
    return out


FLOWS: dict[str, Callable[[], list[Transform]]] = {
    "planar K=2": lambda: [Planar(2) for _ in range(2)],
    "planar K=8": lambda: [Planar(2) for _ in range(8)],
    "planar K=32": lambda: [Planar(2) for _ in range(32)],
    "radial K=16": lambda: [Radial(2) for _ in range(16)],
    "IAF 4 layers": lambda: _iaf(4, 64),
}


@dataclass
class Settings:
    steps: int = 2000
    batch_size: int = 128
    lr: float = 5e-3
    anneal_steps: int = 800
    eval_every: int = 500
    eval_samples: int = 8192
    kl_samples: int = 100_000
    grid: int = 1200
    seed: int = 0


QUICK = Settings(steps=30, batch_size=64, anneal_steps=10, eval_every=15, eval_samples=512,
                 kl_samples=2000, grid=300)


def build_flow(name: str) -> Flow:
    return Flow(Compose(FLOWS[name]()), DiagonalNormal(2))


def engine_config(s: Settings):
    return config_from_dict({
        "model": {"kind": "custom"},
        "train": {"max_steps": s.steps, "batch_size": s.batch_size, "lr": s.lr,
                  "lr_schedule": "cosine", "grad_clip": 10.0, "seed": s.seed,
                  "eval_every": s.eval_every, "eval_batch_size": s.eval_samples,
                  "checkpoint_every": s.steps, "keep_checkpoints": 1,
                  "log_every": s.eval_every, "log_with": "none", "progress": False,
                  "cpu_threads": 1, "mixed_precision": "no"},
    })


def fit(target: str, flow_name: str, s: Settings, log_z: float, out: Path) -> tuple[dict, Flow]:
    """Fit (or reuse) one flow to one target; returns its record and the flow."""
    torch.manual_seed(s.seed)
    flow = build_flow(flow_name)
    run_dir = out / "runs" / target / flow_name.replace(" ", "_").replace("=", "") / \
        f"seed{s.seed}"
    done = run_dir / "result.json"
    wanted = vars(s)
    saved = reusable_result(done, wanted)
    if saved is not None:
        load_weights(run_dir, flow, "best")
        return {**saved["record"], "reused": True}, flow
    energy = POTENTIALS[target]
    task = ReverseKLTask(flow, energy, anneal_steps=s.anneal_steps, anneal_start=0.01,
                         log_normalizer=log_z)
    start = time.perf_counter()
    engine_train(engine_config(s), run_dir, task=task,
                 splits={"train": SampleSlots(s.batch_size * 100),
                         "val": SampleSlots(s.eval_samples)})
    seconds = time.perf_counter() - start
    info = load_weights(run_dir, flow, "best")
    torch.manual_seed(s.seed + 1)
    kl, error = reverse_kl(flow, energy, log_z, num_samples=s.kl_samples)
    record = {"target": target, "flow": flow_name, "seed": s.seed, "kl": kl, "kl_se": error,
              "best_step": info["step"], "train_seconds": seconds,
              "params": sum(p.numel() for p in flow.parameters())}
    write_json_atomic({"record": record, "settings": wanted}, done)
    return record, flow


def plot(flows: dict[tuple[str, str], Flow], records: dict[tuple[str, str], dict],
         log_z: dict[str, float], path: Path, targets: list[str], names: list[str],
         points: int = 200) -> None:
    """Rows: targets; columns: the true density, then ``q`` of every flow (on [-4, 4]^2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lim = 4.0
    axis = torch.linspace(-lim, lim, points)
    grid = torch.cartesian_prod(axis, axis)  # first coordinate slowest
    fig, axes = plt.subplots(len(targets), 1 + len(names),
                             figsize=(2.1 * (1 + len(names)), 2.1 * len(targets)), squeeze=False)
    for r, target in enumerate(targets):
        with torch.no_grad():
            true = torch.exp(-POTENTIALS[target](grid.double()) - log_z[target]).float()
        panels = [("exp(-U) / Z", true)]
        for name in names:
            with torch.no_grad():
                density = flows[target, name].log_prob(grid).exp()
            panels.append((f"{name}\nKL {records[target, name]['kl']:.3f}", density))
        for c, (title, density) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(density.reshape(points, points).T.numpy(), origin="lower",
                      extent=(-lim, lim, -lim, lim), cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(target)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(records: list[dict], log_z: dict[str, float], s: Settings, figure: str,
             minutes: float, command: str) -> str:
    names = list(dict.fromkeys(r["flow"] for r in records))
    lines = [
        "# Flows fitted to unnormalized 2-D densities (Rezende & Mohamed 2015, U1-U4)",
        "",
        f"Command: `{command}`  ",
        f"Measured compute: {minutes:.1f} min (training and scoring, one thread, `nice -n 10`, "
        "2-core CPU shared with other jobs).",
        "",
        "Each flow has a learnable diagonal-Gaussian base and is trained through seqflow's "
        f"engine on the reverse KL (`ReverseKLTask`): Adam, lr {s.lr} (cosine), batch "
        f"{s.batch_size} draws, {s.steps} steps, energy weight annealed linearly from 0.01 to 1 "
        f"over {s.anneal_steps} steps, the weights with the lowest free energy on "
        f"{s.eval_samples} fresh draws (every {s.eval_every} steps) restored; seed {s.seed}. "
        f"KL(q || p) = E_q[log q + U] + log Z in nats: {s.kl_samples:,} draws of q (± standard "
        f"error), log Z by the midpoint rule on a {s.grid}x{s.grid} grid over [-6, 6]^2. U2-U4 "
        "carry a wall at |z1| = 4 (see `potentials.py`): as printed they are not normalizable.",
        "",
        "| target | log Z | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    by = {(r["target"], r["flow"]): r for r in records}
    for target in log_z:
        cells = [f"{by[target, n]['kl']:.3f} ± {by[target, n]['kl_se']:.3f}" for n in names]
        lines.append(f"| {target} | {log_z[target]:.4f} | " + " | ".join(cells) + " |")
    halves = [f"{r['target']} {r['flow']}" for r in records if abs(r["kl"] - math.log(2)) < 0.05]
    if halves:
        lines += ["", "KL within 0.05 of log 2 = 0.693 (" + ", ".join(halves) + "): the reverse "
                  "KL is mode-seeking, and such a q typically covers one of two modes of equal "
                  "mass and misses the other (see the figure)."]
    params = {n: next(r["params"] for r in records if r["flow"] == n) for n in names}
    lines += ["", "Parameters: " + ", ".join(f"{n} {params[n]}" for n in names) + ".", "",
              f"![true densities and fitted flows]({figure})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/potentials")
    parser.add_argument("--results-md", help="report path; the figure is written next to it "
                        "as vi_potentials.png (default: OUT/results.md)")
    parser.add_argument("--results-json", help="raw results (records, settings, command, "
                        "machine, date, commit); the figure is written next to it")
    parser.add_argument("--quick", action="store_true", help="a few steps (tests)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", nargs="+", choices=list(POTENTIALS), default=list(POTENTIALS))
    parser.add_argument("--flows", nargs="+", choices=list(FLOWS), default=list(FLOWS))
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = provenance(["python", "recipes/vae/potentials.py", *argv], Path(__file__).parent)
    s = replace(QUICK if args.quick else Settings(), seed=args.seed)
    if args.steps is not None:
        s = replace(s, steps=args.steps)
    out = Path(args.out)
    log_z = {name: log_normalizer_on_grid(POTENTIALS[name], -6.0, 6.0, s.grid)
             for name in args.targets}
    records, flows = [], {}
    for target in args.targets:
        for name in args.flows:
            record, flow = fit(target, name, s, log_z[target], out)
            records.append(record)
            flows[target, name] = flow
            print(f"{target} {name}: KL {record['kl']:.4f} ± {record['kl_se']:.4f}"
                  f"{' (reused)' if record.get('reused') else ''}", flush=True)
    md_path = Path(args.results_md) if args.results_md else out / "results.md"
    md_path.parent.mkdir(parents=True, exist_ok=True)
    figure = "vi_potentials.png"
    figure_dir = Path(args.results_json).parent if args.results_json else md_path.parent
    figure_dir.mkdir(parents=True, exist_ok=True)
    plot(flows, {(r["target"], r["flow"]): r for r in records}, log_z, figure_dir / figure,
         args.targets, args.flows)
    minutes = sum(r["train_seconds"] for r in records) / 60
    command = "python recipes/vae/potentials.py" + (" --quick" if args.quick else "")
    md_path.write_text(markdown(records, log_z, s, figure, minutes, command))
    write_json_atomic({"records": records, "log_z": log_z}, out / "results.json")
    if args.results_json:
        write_json_atomic({**started, "settings": vars(s), "log_z": log_z,
                           "records": [{k: v for k, v in r.items() if k != "reused"}
                                       for r in records]}, Path(args.results_json))
    return records


if __name__ == "__main__":
    main()
