"""CPU speed of the pretrained cloud model: chipqa's scoring path against onnxruntime.

The same chips (synthetic, written as GeoTIFFs and read back like a real dataset) go

* through chipqa as ``chipqa score`` runs them: :func:`chipqa.scoring.score_batch` with
  ``load_predictor("pretrained", device="cpu")`` (uint16 DNs in; normalisation and
  padding in torch, the network on chipqa's fast CPU path, the softmax maps and the
  per-chip statistics included);
* through onnxruntime alone, on UKIS csmask's shipped graph (``model_4b_l2a.onnx``, its
  height and width made free so that it also takes 512²; default session options; its
  input normalised beforehand, not timed);

alternately, call by call, at 256² and 512², one chip a call and the CPU's default batch
(8). Each row gives the median milliseconds per chip of each and their ratio::

    .venv/bin/python bench/pretrained_speed.py                 # the table
    .venv/bin/python bench/pretrained_speed.py --torch         # + chipqa on torch alone
    .venv/bin/python bench/pretrained_speed.py --pipeline 48   # + whole runs, threads

On a shared machine the figures are noisy: the engines are timed alternately so that a
busy spell slows both, and the ratio holds where the milliseconds do not.

``--pipeline N`` times :func:`chipqa.scoring.score_dataset` end to end (reading threads
included) on N chips of 256², for several reading-worker counts and onnxruntime thread
settings (``--sizes`` with no size: only these). Those runs follow one another, so
compare them on idle cores only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from chipqa.data import open_dataset
from chipqa.predictors import load_predictor
from chipqa.predictors.fast_cpu import OnnxRunner
from chipqa.predictors.pretrained import weights_file
from chipqa.scoring import score_batch, score_dataset
from chipqa.scoring.pipeline import default_batch_size
from chipqa.synth import generate_dataset


def shipped_session(threads: int | None = None):
    """onnxruntime on csmask's shipped graph with free height and width."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(weights_file("l2a")))
    for v in [*model.graph.input, *model.graph.output]:
        dims = v.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "height", "width"
    del model.graph.value_info[:]  # shapes inferred for 256² only
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def read_chips(root: Path, n: int, size: int, seed: int):
    synth = generate_dataset(root, n_chips=n, size=size, error_rate=0.0, seed=seed)
    dataset = open_dataset(synth.root, cache="off", fixes=False)
    return [dataset.read_record(rec) for rec in dataset]


def alternate(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Time each function ``repeats`` times, taking turns (after one warm-up call each)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def table(args, predictor, torch_predictor, work: Path) -> None:
    session = shipped_session(args.ort_threads)
    mean = np.asarray(predictor.config.mean, np.float32)[:, None, None]
    std = np.asarray(predictor.config.std, np.float32)[:, None, None]
    cols = ["chipqa", "onnxrt", "ratio"] + (["torch", "t/onnx"] if torch_predictor else [])
    print(f"{'size':>5} {'batch':>5} " + " ".join(f"{c:>8}" for c in cols) + "   (ms per chip)")
    ratios = {}
    for size in args.sizes:
        chips = read_chips(work / f"ds{size}", max(args.batches), size, seed=size)
        for batch in args.batches:
            part = chips[:batch]
            x = np.stack([(c.bands / 10_000 - mean) / std for c in part]).astype(np.float32)
            fns = {
                "chipqa": lambda part=part: score_batch(predictor, part),
                "onnxrt": lambda x=x: session.run(None, {"input": x}),
            }
            if torch_predictor is not None:
                fns["torch"] = lambda part=part: score_batch(torch_predictor, part)
            times = alternate(fns, args.repeats)
            ms = {k: 1000 * statistics.median(v) / batch for k, v in times.items()}
            ratios[size, batch] = ms["chipqa"] / ms["onnxrt"]
            row = [ms["chipqa"], ms["onnxrt"], ratios[size, batch]]
            if torch_predictor is not None:
                row += [ms["torch"], ms["torch"] / ms["onnxrt"]]
            print(f"{size:>5} {batch:>5} " + " ".join(f"{v:>8.2f}" for v in row), flush=True)
    worst = max(ratios.values())
    verdict = "within" if worst <= 1.2 else "over"
    print(f"worst ratio chipqa / onnxruntime: {worst:.2f} ({verdict} 1.2)")


def pipeline(args, predictor, work: Path) -> None:
    """Whole scoring runs: reading threads and onnxruntime threads on the same cores."""
    synth = generate_dataset(work / "pipe", n_chips=args.pipeline, size=256, error_rate=0.0)
    dataset = open_dataset(synth.root, cache="off", fixes=False)
    if predictor.cpu_runner is None:
        print("no onnxruntime runner: pipeline timing skipped")
        return
    runners = {
        (threads, spin): _with_settings(predictor.cpu_runner, threads, spin)
        for threads in (1, 2)
        for spin in (False, True)
    }
    print(f"\nscore_dataset on {len(dataset)} chips of 256², batch {default_batch_size(predictor)}")
    print(f"{'ort threads':>11} {'spinning':>8} {'workers':>7} {'ms/chip':>8}")
    for workers in args.workers:
        for (threads, spin), runner in runners.items():
            predictor.cpu_runner = runner
            score_dataset(dataset, predictor, workers=workers)  # warm
            times = []
            for _ in range(args.pipeline_repeats):
                t0 = time.perf_counter()
                score_dataset(dataset, predictor, workers=workers)
                times.append(time.perf_counter() - t0)
            ms = 1000 * statistics.median(times) / len(dataset)
            print(f"{threads:>11} {'on' if spin else 'off':>8} {workers:>7} {ms:>8.1f}", flush=True)


def _with_settings(runner, threads: int, spin: bool):
    """The runner's export in a session of other thread settings."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(runner.path), opts, providers=["CPUExecutionProvider"])
    return OnnxRunner(session, runner.path, threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[256, 512], help="chip sides (px)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="chips per call")
    p.add_argument("--repeats", type=int, default=7, help="timed calls per case (median)")
    p.add_argument("--ort-threads", type=int, default=None, help="reference's threads")
    p.add_argument("--torch", action="store_true", help="also chipqa on torch (fast=False)")
    p.add_argument("--pipeline", type=int, default=0, help="chips for whole scoring runs")
    p.add_argument("--pipeline-repeats", type=int, default=3)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="reading threads")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    t0 = time.perf_counter()
    predictor = load_predictor("pretrained", device="cpu")
    print(
        f"load_predictor('pretrained', device='cpu'): {time.perf_counter() - t0:.1f} s; "
        f"network on {predictor.cpu_runner or 'torch'}"
    )
    if predictor.cpu_runner is None:
        print("the fast CPU path is off (see the warning above)", file=sys.stderr)
    torch_predictor = None
    if args.torch:
        torch_predictor = load_predictor("pretrained", device="cpu", fast=False)
    print(f"{torch.get_num_threads()} torch threads; onnxruntime {_ort_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.sizes:  # --sizes with no size: the pipeline runs only
            table(args, predictor, torch_predictor, Path(tmp))
        if args.pipeline:
            pipeline(args, predictor, Path(tmp))
    return 0


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    raise SystemExit(main())
