"""How long a gallery page of thumbnails takes to make, with and without the probability
maps kept from scoring (``<dataset>_chipqa_previews``), for a network model.

Generates ``--chips`` synthetic chips, scores them with ``--model`` (the pretrained
cloud model by default) keeping previews, then makes every chip's gallery thumbnail
through the review's :class:`~chipqa.review.ChipLoader` twice, each time with a fresh
loader (nothing cached) and the widget's two loader threads: once predicting every chip
again (no previews), once from the previews. Prints the seconds for the page and per
chip, median of ``--repeats`` runs, and the ratio.

    python bench/gallery_thumbnails.py --chips 24 --size 512
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--chips", type=int, default=24, help="one gallery page is 24 chips")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--model", default="pretrained")
    ap.add_argument("--thumb", type=int, default=192, help="thumbnail side in pixels")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from chipqa.data import open_dataset
    from chipqa.predictors import load_predictor
    from chipqa.review.loader import ChipLoader
    from chipqa.scoring import score_dataset
    from chipqa.scoring.previews import PreviewStore
    from chipqa.synth import generate_dataset

    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name) / "data"
    generate_dataset(root, n_chips=args.chips, size=args.size, seed=0)
    ds = open_dataset(root)
    predictor = load_predictor(args.model, device="cpu")
    store = PreviewStore.for_predictor(root, predictor)
    t0 = time.perf_counter()
    score_dataset(ds, predictor, threshold=0.5, previews=store)
    print(
        f"scored {args.chips} chips of {args.size}² with {predictor.name} in "
        f"{time.perf_counter() - t0:.1f} s (previews kept)"
    )
    ids = [r.chip_id for r in ds]

    def page(previews) -> float:
        loader = ChipLoader(ds, predictor.predict_numpy, previews=previews)
        try:
            t = time.perf_counter()
            futures = [loader.request_thumbnail(c, args.thumb) for c in ids]
            for f in futures:
                f.result()
            return time.perf_counter() - t
        finally:
            loader.close()

    results = {}
    for name, previews in (("predicting every chip", None), ("from the previews", store)):
        runs = [page(previews) for _ in range(args.repeats)]
        results[name] = statistics.median(runs)
        print(
            f"{name}: {results[name]:.2f} s for {len(ids)} thumbnails "
            f"({1000 * results[name] / len(ids):.0f} ms a chip), median of {args.repeats}"
        )
    a, b = results.values()
    print(f"ratio: {a / b:.1f}× faster from the previews")
    tmp.cleanup()


if __name__ == "__main__":
    main()
