"""Per-chip IoU: chipqa's kernel vs smp.metrics and torchmetrics, on the same tensors.

Makes a batch of random 512×512 label / prediction / valid masks (cloud-like blobs, a
share of nodata) and times, per batch:

* chipqa: ``chipqa.stats.batched.per_chip_iou`` (bool tensors, one pass of sums);
* smp: ``smp.metrics.get_stats(mode="binary")`` + ``iou_score(reduction="none")``
  (nodata zeroed on both sides first, as smp's binary mode has no ignore index);
* torchmetrics: ``binary_stat_scores(multidim_average="samplewise")`` → IoU.

It checks that the three agree, prints median times and the ratios to chipqa's kernel,
and on CUDA also the memory-bandwidth floor (bytes of the two masks ÷ the device's
measured copy bandwidth).

    python bench/iou_kernel.py --chips 64 --size 512 --device cpu
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from chipqa._compat import import_smp, import_torchvision
from chipqa.stats.batched import per_chip_iou


def timeit(fn, repeat: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chips", type=int, default=64)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    dev = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    torch.set_num_threads(torch.get_num_threads())
    import_torchvision()  # torchmetrics imports torchvision
    from torchmetrics.functional.classification import binary_stat_scores

    smp = import_smp()
    g = torch.Generator().manual_seed(0)
    n, s = args.chips, args.size
    blobs = torch.nn.functional.avg_pool2d(torch.rand(n, 1, s, s, generator=g), 31, 1, 15)[:, 0]
    label = (blobs > 0.5).to(dev)
    pred = (blobs + 0.02 * torch.randn(n, s, s, generator=g) > 0.5).to(dev)
    valid = (torch.rand(n, s, s, generator=g) > 0.05).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def ours():
        return per_chip_iou(pred, label, valid)

    p64 = (pred & valid).long()[:, None]
    t64 = (label & valid).long()[:, None]

    def smp_iou():
        tp, fp, fn, tn = smp.metrics.get_stats(p64, t64, mode="binary")
        return smp.metrics.iou_score(tp, fp, fn, tn, reduction="none")[:, 0]

    pz = (pred & valid).view(n, -1)
    tz = (label & valid).view(n, -1)

    def tm_iou():
        st = binary_stat_scores(pz.int(), tz.int(), multidim_average="samplewise")
        tp, fp, fn = st[:, 0], st[:, 1], st[:, 3]
        union = tp + fp + fn
        return torch.where(
            union > 0, tp / union.clamp(min=1), torch.ones_like(tp, dtype=torch.float)
        )

    a, b, c = ours(), smp_iou(), tm_iou()
    torch.testing.assert_close(a.double(), b.double(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.double(), c.double(), rtol=1e-5, atol=1e-6)
    t_ours = timeit(ours, args.repeat, sync)

    def smp_from_bool():  # smp needs int64 masks: making them is part of its cost
        tp, fp, fn, tn = smp.metrics.get_stats(
            (pred & valid).long()[:, None], (label & valid).long()[:, None], mode="binary"
        )
        return smp.metrics.iou_score(tp, fp, fn, tn, reduction="none")

    t_smp = timeit(smp_from_bool, args.repeat, sync)
    t_tm = timeit(tm_iou, args.repeat, sync)
    print(f"{n} chips of {s}² on {dev}, {torch.get_num_threads()} threads; results agree")
    print(f"  chipqa per_chip_iou          {t_ours * 1e3:8.1f} ms  (1.0×)")
    ratio = t_smp / t_ours
    print(f"  smp get_stats + iou_score    {t_smp * 1e3:8.1f} ms  ({ratio:.1f}× chipqa's time)")
    print(
        f"  torchmetrics samplewise      {t_tm * 1e3:8.1f} ms  ({t_tm / t_ours:.1f}× chipqa's time)"
    )
    if dev.type == "cuda":
        nbytes = label.numel() * 2  # the two masks, one byte per pixel
        buf = torch.empty(256 * 2**20, dtype=torch.uint8, device=dev)
        t_copy = timeit(lambda: buf.clone(), args.repeat, sync)
        bw = 2 * buf.numel() / t_copy
        floor = nbytes / bw
        print(
            f"  bandwidth floor              {floor * 1e3:8.3f} ms  (copy {bw / 1e9:.0f} GB/s; "
            f"chipqa at {t_ours / floor:.1f}× the floor)"
        )


if __name__ == "__main__":
    main()
