"""How well each ranking finds wrong labels on REAL Sentinel-2 chips, kind by kind.

Real chips are the test that counts: a rule chosen on generated chips alone can rank
subtle real errors badly. This benchmark

1. takes the real chips of ``--real`` (default ``../shared/real-dev``: five On Cloud N
   chips with human labels, one with a reference mask, one with an algorithm's mask) and
   makes the 8 rotations / flips of each a chip of its own (distinct to a model);
2. plants label errors into copies of them (:func:`chipqa.synth.planting.plant_error`),
   ``--errors`` of each group: **gross** (all cloud, no cloud, another chip's label,
   shifted, half erased) and **subtle** (a cloud blob erased, a cloud-shaped blob added
   on clear ground, the label 4-7 px too tight, or too loose, all round);
3. writes one dataset of real GeoTIFFs (the chips' own profiles) and scores it with each
   ``--models`` predictor exactly as ``chipqa score --threshold auto`` does;
4. ranks every set — gross or subtle errors, among all real chips or the On Cloud N ones
   only — by each rule on the same scored rows: chipqa's ranking (``suspicion``), the
   previous release's rule, ``1 − IoU``, ``1 − label_quality`` and, as the peer to beat,
   cleanlab's ``cleanlab.segmentation.rank.get_label_quality_scores`` (softmin) on the
   same probabilities;
5. does the same on generated chips (``chipqa synth``) beside them, unless
   ``--synthetic 0``.

Average precision (AP) and recall in the top k (k = the number of errors) by kind.

    python bench/real_quality.py                          # pretrained and baseline
    python bench/real_quality.py --models baseline --synthetic 0   # a quick look
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from chipqa.data import open_dataset
from chipqa.predictors import load_predictor
from chipqa.scoring import score_dataset
from chipqa.scoring.evaluate import average_precision, read_truth
from chipqa.scoring.table import finalize
from chipqa.synth import generate_dataset
from chipqa.synth.planting import GROSS_KINDS, SUBTLE_KINDS, plant_error

BANDS = ("B02", "B03", "B04", "B08")


def dihedral(a: np.ndarray, t: int) -> np.ndarray:
    """The t-th of the 8 rotations / flips of the last two axes."""
    a = np.rot90(a, t % 4, axes=(-2, -1))
    return np.ascontiguousarray(a[..., ::-1] if t >= 4 else a)


def read_real(root: Path) -> dict[str, dict]:
    chips = {}
    for d in sorted(p for p in root.iterdir() if (p / "label.tif").exists()):
        with rasterio.open(d / "label.tif") as src:
            label, profile = src.read(1), src.profile
        bands = []
        for b in BANDS:
            with rasterio.open(d / f"{b}.tif") as src:
                bands.append(src.read(1))
                band_profile = src.profile
        chips[d.name] = {
            "bands": np.stack(bands),
            "label": label,
            "lp": profile,
            "bp": band_profile,
        }
    return chips


def load_real(root: Path) -> dict[str, dict]:
    """:func:`read_real`, or a clear exit when ``root`` holds no real chips."""
    real = read_real(root.resolve()) if root.is_dir() else {}
    if not real:
        raise SystemExit(
            f"no real chips in {root} (folders with B02.tif … B08.tif and label.tif); "
            "pass --real with the real-dev folder"
        )
    return real


def write_chip(root: Path, cid: str, bands, label, bp, lp) -> None:
    d = root / cid
    d.mkdir(parents=True)
    h, w = label.shape
    for name, band in zip(BANDS, bands, strict=True):
        with rasterio.open(d / f"{name}.tif", "w", **{**bp, "height": h, "width": w}) as dst:
            dst.write(band, 1)
    with rasterio.open(d / "label.tif", "w", **{**lp, "height": h, "width": w}) as dst:
        dst.write(label, 1)


def build(real: dict, out: Path, n_errors: int, transforms: int, seed: int):
    """Write the clean chips and the planted copies; returns ``{chip_id: (group, kind,
    source image)}`` for every chip (group '' for clean chips)."""
    rng = np.random.default_rng(seed)
    truth, images = {}, []
    for name, c in real.items():
        for t in range(transforms):
            cid = f"{name}_t{t}"
            label = dihedral(c["label"], t)
            write_chip(out, cid, dihedral(c["bands"], t), label, c["bp"], c["lp"])
            truth[cid] = ("", "", cid)
            images.append((cid, name, t, label))
    for group, kinds in (("gross", GROSS_KINDS), ("subtle", SUBTLE_KINDS)):
        for i in range(n_errors):
            kind = kinds[i % len(kinds)]
            for _ in range(100):
                cid, name, t, label = images[rng.integers(len(images))]
                donors = [im[3] for im in images if im[1] != name]
                donors = [donors[j] for j in rng.permutation(len(donors))[:12]]
                wrong = plant_error(rng, label, kind, donors)
                if wrong is not None:
                    eid = f"{cid}_{group}{i:02d}_{kind}"
                    c = real[name]
                    write_chip(out, eid, dihedral(c["bands"], t), wrong, c["bp"], c["lp"])
                    truth[eid] = (group, kind, cid)
                    break
    return truth


def real_copies(
    src: Path, out: Path, n: int, error_rate: float = 0.0, seed: int = 0
) -> pd.DataFrame:
    """Write ``n`` chips made of the real ones in ``src`` into the new folder ``out``, for
    the GUI benchmarks: the 8 rotations / flips of every real chip in turn (``<chip>_t<t>``; past
    8 × the real chips, the same again as ``<chip>_t<t>_r<k>``), with a gross label error
    planted into ``round(error_rate * n)`` of them at random. The truth goes where
    ``chipqa synth`` puts it, ``<out>-truth/planted_errors.csv`` (``chip_id``,
    ``corrupted``, ``error_kind``), and is returned."""
    real = load_real(src)
    rng = np.random.default_rng(seed)
    names = sorted(real)
    distinct = 8 * len(names)
    wrong_at = set(rng.choice(n, int(round(error_rate * n)), replace=False).tolist())
    rows = []
    for i in range(n):
        rep, v = divmod(i, distinct)
        t, name = divmod(v, len(names))
        name = names[name]
        cid = f"{name}_t{t}" + (f"_r{rep}" if rep else "")
        c = real[name]
        label, kind = dihedral(c["label"], t), ""
        if i in wrong_at:
            donors = [real[o]["label"] for o in names if o != name]
            for k in GROSS_KINDS[i % 5 :] + GROSS_KINDS[: i % 5]:  # the next that fits
                wrong = plant_error(rng, label, k, donors)
                if wrong is not None:
                    label, kind = wrong, k
                    break
        write_chip(out, cid, dihedral(c["bands"], t), label, c["bp"], c["lp"])
        rows.append({"chip_id": cid, "corrupted": bool(kind), "error_kind": kind})
    truth = out.with_name(out.name + "-truth") / "planted_errors.csv"
    truth.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(truth, index=False)
    return table


def gui_dataset(
    root: Path, n: int, real: Path | None = None, size: int = 512, error_rate: float = 0.15
) -> str:
    """The GUI benchmarks' chips: ``n`` generated ones of ``size``², or with ``real``,
    ``n`` copies of the real chips there (:func:`real_copies`); label errors planted into
    ``error_rate`` of them, the truth in ``<root>-truth``. Returns a line saying what was
    written and how long it took."""
    t0 = time.perf_counter()
    if real is not None:
        real_copies(real, root, n, error_rate=error_rate)
        what = f"{n} copies of the real chips of {real}"
    else:
        generate_dataset(root, n_chips=n, size=size, error_rate=error_rate, seed=0)
        what = f"{n} generated chips of {size}²"
    return f"wrote {what} in {time.perf_counter() - t0:.1f} s"


def old_rule(df: pd.DataFrame) -> np.ndarray:
    """The previous release's suspicion: mean of 1 − label_quality and soft mismatch."""
    return (((1 - df.label_quality) + df.soft_mismatch) / 2).to_numpy()


def evaluate(rows: list[dict], truth: dict, group: str, chips: set | None, cl: dict) -> dict:
    """AP and top-k recall by kind of every rule on one set (re-ranked on its own)."""
    keep = [
        r
        for r in rows
        if truth[r["chip_id"]][0] in ("", group)
        and (chips is None or r["chip_id"].rsplit("_t", 1)[0] in chips)
    ]
    table = finalize(keep)
    err = np.array([truth[c][0] == group for c in table.chip_id])
    kinds = np.array([truth[c][1] for c in table.chip_id])
    rules = {
        "chipqa": table.outlier_z.to_numpy(),
        "previous rule": old_rule(table),
        "1 - IoU": 1 - table.iou.to_numpy(),
        "1 - label_quality": 1 - table.label_quality.to_numpy(),
    }
    if cl:
        rules["cleanlab softmin"] = -np.array([cl[c] for c in table.chip_id])
    out = {"chips": len(table), "errors": int(err.sum())}
    k = int(err.sum())
    for name, score in rules.items():
        order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
        top = set(order[:k])
        by_kind = {
            kd: f"{sum(1 for i in np.flatnonzero(kinds == kd) if i in top)}/{(kinds == kd).sum()}"
            for kd in sorted(set(kinds[err]))
        }
        out[name] = {"ap": average_precision(err[order]), "top_k": by_kind}
    return out


def cleanlab_scores(dataset, predictor, truth: dict) -> dict:
    """cleanlab's own softmin label quality of every chip on the predictor's probabilities
    (predicted once per image: a planted copy shares its source image's prediction)."""
    from cleanlab.segmentation.rank import get_label_quality_scores

    probs, out = {}, {}
    for rec in dataset:
        chip = dataset.read_record(rec)
        src = truth[rec.chip_id][2]
        if src not in probs:
            probs[src] = predictor.predict_numpy(chip.bands)
        p = probs[src]
        m = chip.valid & (chip.label != 255)
        label = np.where(m, chip.label, 0).astype(int)
        # pixels without a label get the model's own class, so they never count as issues
        label = np.where(m, label, (p >= 0.5).astype(int))
        pp = np.stack([1 - p, p])[None]
        scores, _ = get_label_quality_scores(label[None], pp, verbose=False)
        out[rec.chip_id] = float(scores[0])
    return out


def synthetic_sets(models, n, size, seed, workdir: Path) -> list[dict]:
    data = workdir / "synth"
    result = generate_dataset(data, n_chips=n, size=size, error_rate=0.15, seed=seed)
    truth = read_truth(result.truth_csv)
    errors = set(truth.chip_id[truth.corrupted])
    out = []
    for model in models:
        ds = open_dataset(data, cache="off")
        table = score_dataset(ds, load_predictor(model, "cpu"), threshold="auto")
        err = table.chip_id.isin(set(errors)).to_numpy()
        row = {"set": "synthetic", "model": model, "chips": len(table), "errors": int(err.sum())}
        for name, score in {
            "chipqa": table.outlier_z.to_numpy(),
            "previous rule": old_rule(table),
            "1 - IoU": 1 - table.iou.to_numpy(),
            "1 - label_quality": 1 - table.label_quality.to_numpy(),
        }.items():
            order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
            row[name] = {"ap": average_precision(err[order])}
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--real", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "real-dev"
    )
    ap.add_argument("--models", nargs="+", default=["pretrained", "baseline"])
    ap.add_argument("--errors", type=int, default=32, help="planted errors per group")
    ap.add_argument("--transforms", type=int, default=8, choices=range(1, 9))
    ap.add_argument("--synthetic", type=int, default=200, help="generated chips (0: none)")
    ap.add_argument("--size", type=int, default=256, help="generated chips' size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--no-cleanlab", action="store_true")
    args = ap.parse_args()

    real = load_real(args.real)
    onc = {n for n in real if n.startswith("oncloudn")}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "real"
        data.mkdir()
        truth = build(real, data, args.errors, args.transforms, args.seed)
        for model in args.models:
            t0 = time.perf_counter()
            ds = open_dataset(data, cache="off")
            predictor = load_predictor(model, "cpu")
            table = score_dataset(ds, predictor, threshold="auto")
            took = time.perf_counter() - t0
            cl = {} if args.no_cleanlab else cleanlab_scores(ds, predictor, truth)
            rows = table.to_dict("records")
            print(
                f"\n{model}: {len(rows)} real chips scored in {took:.0f} s, threshold "
                f"{table.threshold.iloc[0]:.2f}"
            )
            for group in ("gross", "subtle"):
                for label, chips in (("all real", None), ("On Cloud N", onc)):
                    res = evaluate(rows, truth, group, chips, cl)
                    results.append({"set": f"{group}, {label}", "model": model, **res})
        if args.synthetic:
            results += synthetic_sets(args.models, args.synthetic, args.size, args.seed, Path(tmp))
    rules = ["chipqa", "cleanlab softmin", "1 - label_quality", "1 - IoU", "previous rule"]
    print(
        f"\n{'set':<24}{'model':<12}{'chips':>6}{'errors':>7}  "
        + "".join(f"{r:>18}" for r in rules)
    )
    for r in results:
        cells = "".join(f"{r[n]['ap']:>18.3f}" if n in r else f"{'—':>18}" for n in rules)
        print(f"{r['set']:<24}{r['model']:<12}{r['chips']:>6}{r['errors']:>7}  {cells}")
    print("\nerrors in the top k (k = errors) by kind, chipqa vs cleanlab:")
    for r in results:
        if "top_k" in r["chipqa"]:
            peer = r.get("cleanlab softmin", {}).get("top_k", {})
            kinds = ", ".join(
                f"{k} {v}" + (f" ({peer[k]})" if k in peer else "")
                for k, v in r["chipqa"]["top_k"].items()
            )
            print(f"  {r['set']:<22} {r['model']:<11} {kinds}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
