"""Speed of the pretrained cloud model (UKIS csmask's U-Net, efficientnet-b4) per chip.

Median milliseconds per chip of chipqa's torch path (``load_predictor("pretrained")``:
uint16 DNs in, cloud probability out, normalisation and padding included) at 256² and
512², batches of 1 and 8, and of onnxruntime on the shipped float16 ONNX graph, which
takes 256² tiles only (its input normalised beforehand, not timed)::

    .venv/bin/python bench/pretrained_speed.py --repeats 5 --threads 2

On a shared machine the figures are noisy: compare runs made back to back.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from chipqa.predictors import load_predictor
from chipqa.predictors.pretrained import weights_file


def _median_ms_per_chip(fn, batch: int, repeats: int) -> float:
    fn()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / batch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="chip sides (px)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per case (median)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    p.add_argument("--no-onnx", action="store_true", help="skip onnxruntime")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = load_predictor("pretrained", device=args.device)
    rng = np.random.default_rng(0)
    print(f"device {predictor.device}, {torch.get_num_threads()} torch threads")
    print(f"{'engine':<14} {'size':>5} {'batch':>5} {'ms/chip':>9} {'chips/s':>8}")
    for size in args.sizes:
        for batch in args.batches:
            dn = rng.integers(1, 12_000, (batch, 4, size, size)).astype(np.uint16)
            x = torch.from_numpy(dn).to(predictor.device)

            def run_torch(x=x):
                with torch.inference_mode():
                    predictor.predict_proba(x)
                if predictor.device.type == "cuda":
                    torch.cuda.synchronize()

            ms = _median_ms_per_chip(run_torch, batch, args.repeats)
            print(f"{'chipqa torch':<14} {size:>5} {batch:>5} {ms:>9.1f} {1000 / ms:>8.2f}")
    if not args.no_onnx:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if args.threads:
            options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(
            str(weights_file("l2a")), options, providers=["CPUExecutionProvider"]
        )
        mean = np.asarray(predictor.config.mean, np.float32)[:, None, None]
        std = np.asarray(predictor.config.std, np.float32)[:, None, None]
        for batch in args.batches:
            dn = rng.integers(1, 12_000, (batch, 4, 256, 256)).astype(np.float32)
            x = ((dn / 10_000 - mean) / std).astype(np.float32)
            ms = _median_ms_per_chip(
                lambda x=x: session.run(None, {"input": x}), batch, args.repeats
            )
            print(f"{'onnxruntime':<14} {256:>5} {batch:>5} {ms:>9.1f} {1000 / ms:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
