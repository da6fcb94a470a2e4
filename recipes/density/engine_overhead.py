"""What the training engine costs per run of the density comparison, next to a bare Adam loop.

For one model on two moons (the recipe's settings: batch 256, Adam, lr 1e-3, clip 10, one
thread), times ``steps`` optimizer steps two ways and reports the median over ``--repeats``:

* ``bare``: a plain loop (sample a batch, NLL, backward, clip, Adam step), no evaluation;
* ``engine``: :func:`seqflow.train.train` with ``flow=``/``splits=``, evaluating once at the end
  and writing its one final checkpoint and best/final weights, as every recipe run does.

With ``steps`` = 1 and a larger ``steps`` the difference splits into a fixed cost per run and a
cost per step.

    python recipes/density/engine_overhead.py --models made maf --steps 1 300
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from compare import Config, build_model, engine_config, load_data  # noqa: E402

from seqflow.train import train as engine_train  # noqa: E402


def bare_loop(model: torch.nn.Module, train: torch.Tensor, cfg: Config, steps: int) -> None:
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for _ in range(steps):
        batch = train[torch.randint(0, len(train), (cfg.batch_size,), generator=generator)]
        loss = -model.log_prob(batch).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()


def time_one(kind: str, model_name: str, steps: int, cfg: Config, data, scratch: Path) -> float:
    torch.manual_seed(0)
    model = build_model(model_name, 2, cfg, seed=0)
    cfg.steps, cfg.eval_every, cfg.checkpoint_every = steps, steps, 10 * steps
    splits = {n: torch.utils.data.TensorDataset(getattr(data, n)) for n in ("train", "val")}
    run = scratch / f"{kind}-{model_name}-{steps}"
    shutil.rmtree(run, ignore_errors=True)
    start = time.perf_counter()
    if kind == "bare":
        bare_loop(model, data.train, cfg, steps)
    else:
        engine_train(engine_config(data, cfg, 0), run, splits=splits, flow=model)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["made", "maf"])
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 300])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = Config()
    data = load_data("moons", cfg)
    with tempfile.TemporaryDirectory() as tmp:
        time_one("engine", args.models[0], 2, Config(), data, Path(tmp))  # warm up imports
        print("| model | steps | bare loop s | engine s | engine - bare s |")
        print("|---|---|---|---|---|")
        for name in args.models:
            for steps in args.steps:
                bare = statistics.median(time_one("bare", name, steps, Config(), data, Path(tmp))
                                         for _ in range(args.repeats))
                eng = statistics.median(time_one("engine", name, steps, Config(), data,
                                                 Path(tmp)) for _ in range(args.repeats))
                print(f"| {name} | {steps} | {bare:.4f} | {eng:.4f} | {eng - bare:+.4f} |",
                      flush=True)


if __name__ == "__main__":
    main()
