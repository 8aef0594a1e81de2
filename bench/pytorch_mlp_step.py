#!/usr/bin/env python3
"""PyTorch side of bench/mlp-train-step.mjs: times one SGD training step of the same MLP.

Reads a JSON config on stdin ({"inputs", "hidden", "classes", "batch", "steps", "warmup", "threads"}),
prints one JSON line with samples/s. Run with Debian's python3-torch (/usr/bin/python3).
"""
import json
import sys
import time

import torch


def blas_libraries() -> list:
    """The BLAS shared objects this process actually mapped (Debian picks one via alternatives)."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.lower()}
    return sorted(p for p in paths if p.startswith("/"))


def main() -> None:
    cfg = json.load(sys.stdin)
    torch.manual_seed(0)
    torch.set_num_threads(cfg["threads"])
    model = torch.nn.Sequential(
        torch.nn.Linear(cfg["inputs"], cfg["hidden"]),
        torch.nn.ReLU(),
        torch.nn.Linear(cfg["hidden"], cfg["classes"]),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(cfg["batch"], cfg["inputs"])
    y = torch.randint(0, cfg["classes"], (cfg["batch"],))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(cfg["warmup"]):
        step()
    start = time.perf_counter()
    for _ in range(cfg["steps"]):
        step()
    elapsed = time.perf_counter() - start
    print(json.dumps({
        "torch": torch.__version__,
        "blas": blas_libraries(),
        "threads": torch.get_num_threads(),
        "seconds_per_step": elapsed / cfg["steps"],
        "samples_per_second": cfg["batch"] * cfg["steps"] / elapsed,
    }))


if __name__ == "__main__":
    main()
