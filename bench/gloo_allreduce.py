#!/usr/bin/env python3
"""Peer for `ftjob bench allreduce`: torch.distributed all-reduce with the Gloo backend over loopback.

Reads {"world": N, "sizes": [bytes...], "iterations": k|null, "warmup": w, "port": p} on stdin and
prints one JSON line per size (rank 0), with the same timing rules as the TypeScript side:
a barrier before each size, the mean over `iterations` timed all-reduces (SUM, float32).

`--serve '{"world": N, "port": p}'` keeps the ranks up and runs {"bytes": b, "iterations": k}
commands read line by line from stdin, printing each rank's time and CPU seconds per all-reduce
(bench/allreduce-vs-gloo.mjs interleaves these with its own runs).
Run with Debian's python3-torch (/usr/bin/python3).
"""
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def iterations_for(size: int, cfg: dict) -> int:
    if cfg.get("iterations"):
        return cfg["iterations"]
    return max(3, min(50, int(2 * 1e9 / max(size, 1) / 2)))


def worker(rank: int, cfg: dict, queue) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(cfg["port"])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=cfg["world"])
    for size in cfg["sizes"]:
        data = torch.arange(max(1, size // 4), dtype=torch.float32) % 97 * 0.01
        for _ in range(cfg.get("warmup", 2)):
            dist.all_reduce(data)
        iters = iterations_for(size, cfg)
        dist.barrier()
        start = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(data)
        seconds = (time.perf_counter() - start) / iters
        if rank == 0:
            queue.put({"bytes": data.numel() * 4, "iterations": iters, "seconds": seconds})
    dist.destroy_process_group()


def serve(rank: int, cfg: dict, commands, results) -> None:
    """Serve mode: run timed all-reduces on demand, so a caller can interleave them with its own."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(cfg["port"])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=cfg["world"])
    buffers = {}
    while True:
        cmd = commands[rank].get()
        if cmd is None:
            break
        size, iters = cmd["bytes"], cmd["iterations"]
        data = buffers.get(size)
        if data is None:
            data = buffers[size] = torch.arange(max(1, size // 4), dtype=torch.float32) % 97 * 0.01
            for _ in range(cfg.get("warmup", 2)):
                dist.all_reduce(data)
        dist.barrier()
        cpu = time.process_time()
        start = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(data)
        seconds = (time.perf_counter() - start) / iters
        results.put({"rank": rank, "bytes": data.numel() * 4, "iterations": iters, "seconds": seconds,
                     "cpuSeconds": (time.process_time() - cpu) / iters})
    dist.destroy_process_group()


def main_serve(cfg: dict) -> None:
    """Reads {"bytes": b, "iterations": k} lines on stdin (until EOF); prints one JSON line per rank for each."""
    ctx = mp.get_context("spawn")
    commands = [ctx.Queue() for _ in range(cfg["world"])]
    results = ctx.Queue()
    procs = [ctx.Process(target=serve, args=(r, cfg, commands, results)) for r in range(cfg["world"])]
    for p in procs:
        p.start()
    print(json.dumps({"ready": True, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        for q in commands:
            q.put(cmd)
        rows = sorted((results.get(timeout=600) for _ in procs), key=lambda r: r["rank"])
        print(json.dumps({"torch": torch.__version__, "ranks": rows}), flush=True)
    for q in commands:
        q.put(None)
    for p in procs:
        p.join(timeout=60)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        main_serve(json.loads(sys.argv[2]))
        return
    cfg = json.load(sys.stdin)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, cfg, queue)) for r in range(cfg["world"])]
    for p in procs:
        p.start()
    for _ in cfg["sizes"]:
        print(json.dumps({"torch": torch.__version__, **queue.get(timeout=600)}), flush=True)
    for p in procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            sys.exit(f"gloo worker exited with {p.exitcode}")


if __name__ == "__main__":
    main()
