"""The plan of a generated dataset, drawn before any chip is made.

Chip ids, the split of skies and land covers in fixed shares, which chips get which
planted error (on a sky where the kind is a real error) and, for ``swap`` errors, the
earlier chips whose labels are swapped in.
"""

from __future__ import annotations

import numpy as np

from chipqa.synth.chip import SKIES
from chipqa.synth.corruption import ERROR_SHARES

_COMPATIBLE = {
    "all_cloud": ("clear", "partial"),
    "no_cloud": ("overcast", "partial"),
    "shift": ("partial",),
    "half_missing": ("partial",),
    "swap": SKIES,
}
# preferred sky for the common mistakes (a 100 % label on a clear chip, and the reverse)
_PREFERRED = {"all_cloud": "clear", "no_cloud": "overcast"}
# partial-sky cloud-fraction range that makes each kind a clear error
_CF_RANGE = {
    None: (0.05, 0.9),
    "all_cloud": (0.05, 0.55),
    "no_cloud": (0.4, 0.9),
    "shift": (0.2, 0.75),
    "half_missing": (0.2, 0.8),
    "swap": (0.05, 0.9),
}
# ids that CSV readers turn into missing values or booleans
_BAD_IDS = frozenset({"null", "none", "true"})


def _allocate(rng: np.random.Generator, n: int, shares: dict[str, float]) -> list[str]:
    """``n`` items split by ``shares`` (largest remainder), shuffled."""
    keys = list(shares)
    p = np.array([shares[k] for k in keys], float)
    raw = p / p.sum() * n
    counts = np.floor(raw).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    items = [k for k, c in zip(keys, counts, strict=True) for _ in range(c)]
    return [items[i] for i in rng.permutation(len(items))]


def _chip_ids(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` unique four-letter lowercase ids."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    space = 26**4
    if n > space - len(_BAD_IDS):
        raise ValueError(
            f"at most {space - len(_BAD_IDS)} chips can have four-letter ids, asked for {n}"
        )
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        for code in rng.choice(space, size=min(space, n - len(ids) + 8), replace=False):
            digits = [(int(code) // 26**k) % 26 for k in (3, 2, 1, 0)]
            cid = "".join(letters[digits])
            if cid in seen or cid in _BAD_IDS:
                continue
            seen.add(cid)
            ids.append(cid)
            if len(ids) == n:
                break
    return ids


def _plan_errors(rng: np.random.Generator, skies: list[str], n_err: int) -> list[str | None]:
    """Assign an error kind to ``n_err`` chips whose sky makes the kind a real error."""
    kinds: list[str | None] = [None] * len(skies)
    if n_err == 0:
        return kinds
    wanted = _allocate(rng, n_err, ERROR_SHARES)
    # the most constrained kinds first
    wanted.sort(key=lambda k: len(_COMPATIBLE[k]))
    fallbacks = ("swap", "all_cloud", "no_cloud", "shift", "half_missing")
    for kind in wanted:
        for k in (kind,) + fallbacks:
            pool = [
                i
                for i, s in enumerate(skies)
                if kinds[i] is None
                and s in _COMPATIBLE[k]
                and not (k == "swap" and i == 0 and len(skies) > 1)
            ]
            if pool:
                w = np.array([2.0 if skies[i] == _PREFERRED.get(k) else 1.0 for i in pool])
                kinds[pool[int(rng.choice(len(pool), p=w / w.sum()))]] = k
                break
    return kinds


def _plan_donors(
    rng: np.random.Generator, skies: list[str], kinds: list[str | None]
) -> dict[int, list[int]]:
    """For each swap chip, earlier chips whose labels likely disagree with its own."""
    donors: dict[int, list[int]] = {}
    for i, kind in enumerate(kinds):
        if kind != "swap" or i == 0:
            continue
        good = [j for j in range(i) if skies[j] != skies[i] or skies[i] == "partial"]
        if not good:
            good = list(range(i))
        pick = rng.choice(len(good), size=min(4, len(good)), replace=False)
        donors[i] = [good[int(p)] for p in pick]
    return donors
