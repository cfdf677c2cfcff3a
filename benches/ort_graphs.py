#!/usr/bin/env python3
"""Time ONNX Runtime calls on two or more ONNX files in one run, interleaved (BENCHMARKS.md,
run U): one session per file (one intra-op thread, no spinning, all graph optimizations, as
vane-server builds them), the example request row repeated to each batch size, the best of 5
rounds of 2 000 calls.

    python3 benches/ort_graphs.py OLD.onnx NEW.onnx [--batches 1,8,19,32,64]

Needs the `onnxruntime` and `numpy` wheels (the same ONNX Runtime 1.31.1 as
scripts/setup-ort.sh). Times include Python's own per-call cost (about 2 µs here), the same
for every file, so compare differences, not ratios.
"""

import argparse
import time

import numpy as np
import onnxruntime as ort

ROW = [58000, 21.4, 62.0, 1, 2, 84, 3, 15000, 13.9, 512, 9, 21, 0, 14, 684, 0.26, 1, 0, 0, 2]


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def best_us(s, x, calls=2000, rounds=5):
    name = s.get_inputs()[0].name
    out = [o.name for o in s.get_outputs()]
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls):
            s.run(out, {name: x})
        best = min(best, (time.perf_counter() - t) / calls)
    return best * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--batches", default="1,8,19,32,64")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    sessions = [(m, session(m)) for m in args.models]
    x = np.tile(np.array(ROW, dtype=np.float32), (max(batches), 1))
    results = {m: [] for m in args.models}
    for n in batches:
        for m, s in sessions:  # interleaved: each batch size times every file back to back
            results[m].append(best_us(s, x[:n]))
    outs = [s.run(None, {s.get_inputs()[0].name: x})[0] for _, s in sessions]
    diff = max(float(np.abs(o - outs[0]).max()) for o in outs)
    print(f"# µs per call (best of 5 × 2000), onnxruntime {ort.__version__}; max |Δ output| {diff}")
    print("| model | " + " | ".join(f"batch {n}" for n in batches) + " |")
    print("|---|" + "---:|" * len(batches))
    for m in args.models:
        print(f"| {m} | " + " | ".join(f"{t:.2f}" for t in results[m]) + " |")


if __name__ == "__main__":
    main()
