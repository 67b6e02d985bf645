"""Land-cover renderers: the surface reflectance of a chip before clouds.

Step 1 of the physical model (see :mod:`chipqa.synth`): a dominant land cover is
mixed with up to three others laid out by fractal fields and a terrain model; each
cover has its own jittered spectrum and texture; the terrain shades the land with the
chip's sun; a 0.5-pixel Gaussian blur stands in for the instrument's point-spread
function.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from chipqa.synth.noise import _F32, _Canvas, _grid, _jitter, _mix, _sigmoid, _standardize


def _river(cv: _Canvas, width: float) -> np.ndarray:
    """A single meandering river of about ``width`` pixels crossing the chip.

    Returns:
        distance from the centre line in units of the half-width (< 1 inside the river).
    """
    r = cv.rng
    n = cv.size
    yy, xx = _grid(n)
    theta = r.uniform(0.0, math.pi)
    c, s = _F32(math.cos(theta)), _F32(math.sin(theta))
    h = _F32(n / 2.0)
    u = (xx - h) * c + (yy - h) * s
    v = -(xx - h) * s + (yy - h) * c
    length = int(1.5 * n) + 4
    freq = np.fft.rfftfreq(length)
    amp = np.zeros_like(freq)
    amp[1:] = freq[1:] ** -2.0
    coef = (r.standard_normal(amp.size) + 1j * r.standard_normal(amp.size)) * amp
    path = np.fft.irfft(coef, length)
    path = (path - path.mean()) / (path.std() + 1e-12)
    path = path * n * r.uniform(0.04, 0.12) + r.uniform(-0.3, 0.3) * n
    t = np.arange(length, dtype=np.float64) - length / 2.0
    centre = np.interp(u, t, path).astype(_F32)
    slope = np.interp(u, t, np.gradient(path)).astype(_F32)
    # distance across the channel, corrected for the meander's local direction
    dist = np.abs(v - centre) / np.sqrt(1.0 + slope * slope)
    wide = _F32(width / 2.0) * (1.0 + 0.25 * np.sin(u * _F32(r.uniform(0.02, 0.08))))
    return dist / wide


def _render_vegetation(cv: _Canvas) -> tuple[np.ndarray, None]:
    """Forest, woodland, grassland or shrub: green, NIR-bright, canopy texture."""
    r = cv.rng
    forest = _jitter(r, (0.026, 0.046, 0.028, 0.32))
    grass = _jitter(r, (0.040, 0.076, 0.048, 0.42))
    dry = _jitter(r, (0.062, 0.088, 0.098, 0.28))
    dryness = r.beta(1.3, 4.0)
    open_land = grass * (1 - dryness) + dry * dryness
    density = _sigmoid(2.2 * cv.smooth(r.uniform(2.6, 3.4)) + r.normal(0.4, 0.9))
    refl = _mix(open_land, forest, density)
    canopy = 1.0 + 0.045 * cv.tex(2.0) + (0.03 + 0.04 * density) * cv.tex(0.8)
    return refl * canopy[None], None


def _parcels(
    cv: _Canvas, mean_width: float, mean_length: float, theta: float | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rectangular parcels on a rotated grid: strips cut into pieces of random lengths.

    Args:
        cv: the chip's canvas.
        mean_width: mean strip width in pixels.
        mean_length: mean parcel length along a strip in pixels.
        theta: grid orientation in radians (None to draw one).

    Returns:
        parcel id per pixel, the along-row coordinate, and the number of parcels.
    """
    r = cv.rng
    yy, xx = _grid(cv.size)
    if theta is None:
        theta = r.normal(0.0, 0.08) if r.random() < 0.5 else r.uniform(0.0, math.pi / 2)
    c, s = math.cos(theta), math.sin(theta)
    u = xx * c + yy * s
    v = -xx * s + yy * c
    u0, u1, v0, v1 = float(u.min()), float(u.max()), float(v.min()), float(v.max())

    def cuts(lo: float, hi: float, mean: float) -> np.ndarray:
        out = [lo - r.uniform(0.0, mean)]
        while out[-1] <= hi:
            out.append(out[-1] + max(3.0, r.gamma(3.0, mean / 3.0)))
        return np.asarray(out[1:], _F32)

    ucuts = cuts(u0, u1, mean_width)
    strip = np.searchsorted(ucuts, u)
    pid = np.empty(u.shape, np.int32)
    offset = 0
    for k in range(len(ucuts)):
        sel = strip == k
        if not sel.any():
            continue
        vcuts = cuts(v0, v1, mean_length)
        pid[sel] = offset + np.searchsorted(vcuts, v[sel])
        offset += len(vcuts) + 1
    # renumber densely
    _, pid = np.unique(pid, return_inverse=True)
    pid = pid.reshape(u.shape).astype(np.int32)
    return pid, v if r.random() < 0.5 else u, int(pid.max()) + 1


def _render_crops(cv: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Field parcels with sharp edges: green, ripening, stubble or ploughed."""
    r = cv.rng
    width = r.uniform(14.0, 45.0)
    pid, along, n = _parcels(cv, width, width * r.uniform(1.0, 2.5))
    green = _jitter(r, (0.030, 0.068, 0.034, 0.46))
    stubble = _jitter(r, (0.095, 0.125, 0.155, 0.25))
    ploughed = _jitter(r, (0.058, 0.078, 0.098, 0.15))
    state = r.random(n)
    green_share = r.uniform(0.25, 0.65)
    g = np.where(
        state < green_share,
        r.uniform(0.75, 1.0, n),
        np.where(state < green_share + 0.2, r.uniform(0.25, 0.7, n), r.uniform(0.0, 0.12, n)),
    ).astype(_F32)
    wet = r.random(n).astype(_F32)
    soil = stubble[None, :] * (1 - wet[:, None]) + ploughed[None, :] * wet[:, None]
    table = soil * (1 - g[:, None]) + green[None, :] * g[:, None]
    table *= np.exp(r.normal(0.0, 0.07, (n, 1))).astype(_F32)
    table *= np.exp(r.normal(0.0, 0.03, (n, 4))).astype(_F32)
    refl = np.stack([table[:, b][pid] for b in range(4)])
    # crop rows and within-field variation
    period = r.uniform(2.2, 4.5)
    rows = np.sin(along * _F32(2 * math.pi / period)) * _F32(r.uniform(0.0, 0.03))
    texture = 1.0 + 0.04 * cv.smooth(2.6) + 0.025 * cv.tex(1.5) + rows
    refl *= texture[None]
    # field margins: tracks or hedges on some parcel boundaries
    if r.random() < 0.7:
        edge = np.zeros(pid.shape, bool)
        edge[:, 1:] |= pid[:, 1:] != pid[:, :-1]
        edge[1:, :] |= pid[1:, :] != pid[:-1, :]
        margin = (
            _jitter(r, (0.045, 0.07, 0.06, 0.30))
            if r.random() < 0.5
            else _jitter(r, (0.11, 0.13, 0.15, 0.22))
        )
        refl[:, edge] = refl[:, edge] * 0.4 + margin[:, None] * 0.6
    return refl.astype(_F32), pid


_SOILS = (
    (0.100, 0.140, 0.190, 0.270),  # typical
    (0.085, 0.120, 0.190, 0.285),  # red, iron-rich
    (0.170, 0.225, 0.285, 0.345),  # pale, sandy
    (0.060, 0.080, 0.100, 0.160),  # dark, moist or organic
    (0.125, 0.150, 0.175, 0.220),  # grey rock / gravel
)


def _render_bare_soil(cv: _Canvas) -> tuple[np.ndarray, None]:
    """Bare soil, sand and rock with a little sparse vegetation."""
    r = cv.rng
    first = 0 if r.random() < 0.55 else int(r.integers(1, len(_SOILS)))
    second = int(r.integers(len(_SOILS)))
    a = _jitter(r, _SOILS[first])
    b = _jitter(r, _SOILS[second])
    w = _sigmoid(1.8 * cv.smooth(r.uniform(2.6, 3.4)) + r.normal(-0.8, 0.6))
    refl = _mix(a, b, w)
    sparse = np.clip(0.15 * cv.smooth(2.4) + r.uniform(-0.1, 0.15), 0.0, 0.6)
    veg = _jitter(r, (0.04, 0.07, 0.05, 0.33))
    refl = refl * (1 - sparse[None]) + veg[:, None, None] * sparse[None]
    texture = 1.0 + 0.06 * cv.smooth(2.2) + 0.03 * cv.tex(1.3)
    refl = refl * texture[None]
    # dry river beds lined with trees
    sand = _jitter(r, _SOILS[2])
    for _ in range(int(r.choice(3, p=(0.45, 0.4, 0.15)))):
        dist = _river(cv, r.uniform(4.0, 14.0))
        trees = np.clip(1.6 * (1.0 - dist), 0.0, 1.0) * _F32(r.uniform(0.4, 0.8))
        trees *= np.clip(0.7 + 0.5 * cv.tex(1.5), 0.0, 1.0)
        refl = refl * (1.0 - trees[None]) + veg[:, None, None] * trees[None]
        bed = dist < 0.2
        refl[:, bed] = refl[:, bed] * 0.5 + sand[:, None] * 0.5
    return refl, None


def _render_water(cv: _Canvas) -> tuple[np.ndarray, None]:
    """Open water: dark, NIR near zero, very smooth, some turbidity."""
    r = cv.rng
    base = np.array((0.060, 0.050, 0.030, r.uniform(0.010, 0.020)), _F32)
    base *= _F32(r.uniform(0.75, 1.15))
    turbid = np.array((0.008, 0.025, 0.028, 0.004), _F32) * _F32(r.uniform(0.0, 1.2))
    t = np.clip(0.5 + 0.35 * cv.smooth(4.0), 0.0, 1.0)
    refl = base[:, None, None] + turbid[:, None, None] * t[None]
    refl *= (1.0 + 0.008 * cv.tex(2.0))[None]
    return refl.astype(_F32), None


def _render_urban(cv: _Canvas) -> tuple[np.ndarray, None]:
    """Built-up area: streets around blocks of houses, industry, parks and lots."""
    r = cv.rng
    yy, xx = _grid(cv.size)
    theta = r.normal(0.0, 0.1) if r.random() < 0.4 else r.uniform(0.0, math.pi / 2)
    c, s = math.cos(theta), math.sin(theta)
    u = xx * c + yy * s + _F32(r.uniform(0, 100))
    v = -xx * s + yy * c + _F32(r.uniform(0, 100))

    def cells(du: float, dv: float) -> np.ndarray:
        """A uniform random value per rotated cell of size du x dv."""
        iu = np.floor(u / _F32(du)).astype(np.int64)
        iv = np.floor(v / _F32(dv)).astype(np.int64)
        table = r.random((257, 263), dtype=_F32)
        return table[iu % 257, iv % 263]

    # street blocks: irregular rectangles; streets on their edges
    pid, _, nblocks = _parcels(cv, r.uniform(8.0, 18.0), r.uniform(10.0, 26.0), theta=theta)
    block = r.random(nblocks, dtype=_F32)[pid]
    block2 = r.random(nblocks, dtype=_F32)[pid]
    street = np.zeros(pid.shape, bool)
    street[:, 1:] |= pid[:, 1:] != pid[:, :-1]
    street[1:, :] |= pid[1:, :] != pid[:-1, :]
    house = r.uniform(1.6, 3.2)
    small = cells(house, house * r.uniform(1.0, 1.8))
    small2 = cells(house, house * r.uniform(1.0, 1.8))
    big = cells(r.uniform(4.0, 9.0), r.uniform(4.0, 9.0))
    density = _sigmoid(1.8 * cv.smooth(3.2) + r.normal(0.5, 0.6))

    red = r.uniform(0.0, 0.3) if r.random() < 0.6 else 0.0
    palette = {
        "grey": _jitter(r, (0.115, 0.125, 0.135, 0.160)),
        "bright": _jitter(r, (0.190, 0.205, 0.220, 0.245)),
        "white": _jitter(r, (0.260, 0.275, 0.285, 0.300)),
        "red": _jitter(r, (0.075, 0.085, 0.140, 0.185)),
        "dark": _jitter(r, (0.075, 0.080, 0.085, 0.105)),
        "asphalt": _jitter(r, (0.060, 0.064, 0.068, 0.085)),
        "garden": _jitter(r, (0.042, 0.068, 0.052, 0.290)),
        "lot": _jitter(r, (0.110, 0.135, 0.165, 0.220)),
        "street": _jitter(r, (0.080, 0.086, 0.092, 0.130)),
    }
    names = list(palette)
    code = {k: i for i, k in enumerate(names)}

    # block types: park, industry, bare lot, housing
    p_park = 0.04 + 0.22 * (1.0 - density)
    p_ind = p_park + 0.06 + 0.14 * density
    p_lot = p_ind + 0.04
    # housing: roofs and gardens in small cells
    p_green = 0.12 + 0.4 * (1.0 - density)
    roof = np.where(
        small2 < red,
        code["red"],
        np.where(
            small2 < red + 0.5 * (1 - red),
            code["grey"],
            np.where(small2 < 0.92, code["dark"], code["bright"]),
        ),
    )
    housing = np.where(
        small < p_green, code["garden"], np.where(small < p_green + 0.06, code["asphalt"], roof)
    )
    industry = np.where(
        big < 0.35,
        code["white"],
        np.where(big < 0.6, code["bright"], np.where(big < 0.85, code["grey"], code["asphalt"])),
    )
    idx = np.where(
        block < p_park,
        code["garden"],
        np.where(block < p_ind, industry, np.where(block < p_lot, code["lot"], housing)),
    )
    idx = np.where(street, code["street"], idx)
    table = np.stack([palette[k] for k in names])
    refl = np.stack([table[:, b][idx] for b in range(4)])
    refl *= (0.9 + 0.2 * block2)[None]
    refl *= (1.0 + 0.05 * cv.tex(1.0))[None]
    return refl.astype(_F32), None


def _render_snow(cv: _Canvas) -> tuple[np.ndarray, None]:
    """Snow and firn: very bright, NIR lower; rock outcrops added by the terrain step."""
    r = cv.rng
    snow = np.array((0.85, 0.84, 0.80, r.uniform(0.65, 0.72)), _F32)
    snow *= np.exp(r.normal(0.0, 0.015, 4)).astype(_F32) * _F32(r.uniform(0.9, 1.04))
    refl = snow[:, None, None] * (1.0 + 0.02 * cv.tex(1.8) + 0.02 * cv.smooth(2.8))[None]
    return refl.astype(_F32), None


_RENDER = {
    "vegetation": _render_vegetation,
    "crops": _render_crops,
    "bare_soil": _render_bare_soil,
    "water": _render_water,
    "urban": _render_urban,
    "snow": _render_snow,
}

_NEIGHBOURS = {
    "vegetation": (("crops", 3), ("water", 2), ("bare_soil", 2), ("urban", 1)),
    "crops": (("vegetation", 3), ("urban", 1), ("water", 1), ("bare_soil", 1)),
    "bare_soil": (("vegetation", 3), ("crops", 1), ("water", 1), ("urban", 1)),
    "water": (("vegetation", 3), ("crops", 1), ("urban", 1), ("bare_soil", 1)),
    "urban": (("vegetation", 3), ("crops", 1), ("water", 1), ("bare_soil", 1)),
    "snow": (("bare_soil", 3), ("vegetation", 2)),
}
# diffuse share of the light per band (skylight is blue)
_DIFFUSE = np.array((0.32, 0.22, 0.16, 0.10), _F32)


def _surface(cv: _Canvas, dominant: str) -> np.ndarray:
    """Surface reflectance ``(4, H, W)`` of a chip whose dominant cover is ``dominant``."""
    r = cv.rng
    n = cv.size
    terrain = cv.smooth(r.uniform(3.3, 4.0))
    if dominant == "snow":
        slope = r.uniform(0.35, 0.9)
    elif dominant == "bare_soil":
        slope = r.uniform(0.0, 0.35)
    elif dominant in ("vegetation",):
        slope = r.uniform(0.0, 0.3)
    else:
        slope = r.uniform(0.0, 0.08)

    # which covers, and how much of the chip each takes
    names = [c for c, _ in _NEIGHBOURS[dominant]]
    weights = np.array([w for _, w in _NEIGHBOURS[dominant]], float)
    k = int(r.choice(4, p=(0.2, 0.4, 0.3, 0.1)))
    k = min(k, len(names))
    chosen = (
        list(r.choice(len(names), size=k, replace=False, p=weights / weights.sum())) if k else []
    )
    total = r.uniform(0.05, 0.45)
    shares = r.dirichlet(np.ones(max(k, 1)) * 2.0) * total

    refl, _ = _RENDER[dominant](cv)
    covers = [dominant]  # the covers placed so far
    cover = np.zeros((n, n), np.int8)  # index into ``covers`` per pixel
    for j, i in enumerate(chosen):
        name = names[i]
        other, other_pid = _RENDER[name](cv)
        if name == "water":
            if r.random() < 0.35:  # a river
                mask = _river(cv, r.uniform(2.0, 10.0)) < 1.0
                if mask.any():
                    refl[:, mask] = other[:, mask]
                    covers.append(name)
                    cover[mask] = len(covers) - 1
                continue
            # lakes and coasts in the low ground
            f = -terrain + 0.6 * cv.smooth(3.4)
        elif dominant in ("water", "snow"):
            # land on the high ground of a water chip; soil and forest below the snow line
            sign = 1.0 if dominant == "water" else -1.0
            f = sign * terrain + 0.45 * cv.smooth(3.2)
        else:
            f = cv.smooth(r.uniform(2.8, 3.6))
        if name == "crops" and other_pid is not None:
            # crop regions follow whole parcels, clipped where they reach far out
            count = np.bincount(other_pid.ravel())
            mean = np.bincount(other_pid.ravel(), weights=f.ravel()) / np.maximum(count, 1)
            snapped = mean[other_pid].astype(_F32)
            mask = (snapped > np.quantile(snapped, 1.0 - shares[j])) & (
                f > np.quantile(f, 1.0 - min(1.0, 2.0 * shares[j]))
            )
        else:
            mask = f > np.quantile(f, 1.0 - shares[j])
        if not mask.any():
            continue
        refl[:, mask] = other[:, mask]
        covers.append(name)
        cover[mask] = len(covers) - 1

    water = np.isin(cover, [i for i, name in enumerate(covers) if name == "water"])
    snow = np.isin(cover, [i for i, name in enumerate(covers) if name == "snow"])

    # rock outcrops in the snow on steep or ridged ground
    if snow.any():
        gy, gx = np.gradient(terrain)
        steep = _standardize(np.hypot(gx, gy)) + 0.8 * cv.smooth(2.6)
        rock_share = r.uniform(0.03, 0.3)
        rock = snow & (steep > np.quantile(steep[snow], 1.0 - rock_share))
        rock_spec = _jitter(r, (0.075, 0.090, 0.105, 0.150))
        dirt = np.clip(0.5 + 0.5 * cv.tex(2.0), 0.0, 1.0)
        refl[:, rock] = rock_spec[:, None] * (0.7 + 0.6 * dirt[rock])[None]
        # thin snow over rock around outcrops
        near = ndi.gaussian_filter(rock.astype(_F32), 1.2) * snow
        refl *= 1.0 - 0.5 * near[None]

    # brighter, greener shallows near shores
    if water.any() and not water.all():
        shore = ndi.gaussian_filter((~water).astype(_F32), max(1.0, n / 128.0))
        shallow = shore * water
        refl += np.array((0.02, 0.03, 0.02, 0.01), _F32)[:, None, None] * shallow[None]

    # terrain shading of the land
    if slope > 0.01:
        light = cv.shade(terrain, slope, _DIFFUSE)
        refl = np.where(water[None], refl, refl * light)

    # residual haze / adjacency in the blue after atmospheric correction
    refl[0] += _F32(abs(r.normal(0.0, 0.003)))
    # the instrument's point-spread function
    refl = ndi.gaussian_filter(refl, sigma=(0.0, 0.5, 0.5), mode="nearest")
    return refl.astype(_F32)
