"""Where and when a chip was taken: location, UTM CRS and transform, date and sun.

Places are a few real cities and mountains of the On Cloud N regions, each with the
land covers a chip near it may have; the acquisition time is Sentinel-2's pass at about
10:30 local time, and the sun's azimuth follows from the hemisphere.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
from affine import Affine

# name, EPSG code of its UTM zone, approximate easting and northing, latitude, longitude
_LOCATIONS: tuple[tuple[str, int, int, int, float, float], ...] = (
    ("Nairobi, Kenya", 32737, 257000, 9857000, -1.29, 36.82),
    ("Lusaka, Zambia", 32735, 642000, 8298000, -15.39, 28.32),
    ("Harare, Zimbabwe", 32736, 293000, 8028000, -17.83, 31.05),
    ("Kinshasa, DR Congo", 32733, 534000, 9522000, -4.32, 15.31),
    ("Jinja, Uganda", 32636, 522000, 49000, 0.44, 33.20),
    ("Cape Town, South Africa", 32734, 261000, 6244000, -33.92, 18.42),
    ("Lima, Peru", 32718, 278000, 8667000, -12.05, -77.04),
    ("Cusco, Peru", 32719, 178000, 8502000, -13.53, -71.97),
    ("Manaus, Brazil", 32720, 831000, 9655000, -3.12, -60.02),
    ("Mendoza, Argentina", 32719, 516000, 6361000, -32.89, -68.83),
    ("Perth, Australia", 32750, 392000, 6465000, -31.95, 115.86),
    ("Canberra, Australia", 32755, 694000, 6094000, -35.28, 149.13),
    ("Alice Springs, Australia", 32753, 386000, 7379000, -23.70, 133.88),
    ("Addis Ababa, Ethiopia", 32637, 471000, 998000, 9.03, 38.74),
    ("Kilimanjaro, Tanzania", 32737, 317000, 9661000, -3.07, 37.35),
    ("Maseru, Lesotho", 32735, 547000, 6758000, -29.31, 27.48),
)
# dominant land covers a chip near each place may have
_LOCATION_COVERS: dict[str, tuple[str, ...]] = {
    "Nairobi, Kenya": ("vegetation", "crops", "urban", "bare_soil"),
    "Lusaka, Zambia": ("crops", "vegetation", "urban", "bare_soil"),
    "Harare, Zimbabwe": ("crops", "vegetation", "urban", "water"),
    "Kinshasa, DR Congo": ("vegetation", "water", "urban"),
    "Jinja, Uganda": ("water", "vegetation", "crops", "urban"),
    "Cape Town, South Africa": ("urban", "vegetation", "water", "crops", "bare_soil"),
    "Lima, Peru": ("urban", "bare_soil", "water"),
    "Cusco, Peru": ("snow", "bare_soil", "vegetation", "crops"),
    "Manaus, Brazil": ("vegetation", "water", "urban"),
    "Mendoza, Argentina": ("snow", "bare_soil", "crops", "urban"),
    "Perth, Australia": ("crops", "urban", "water", "bare_soil", "vegetation"),
    "Canberra, Australia": ("vegetation", "crops", "urban", "snow"),
    "Alice Springs, Australia": ("bare_soil", "vegetation"),
    "Addis Ababa, Ethiopia": ("crops", "urban", "vegetation"),
    "Kilimanjaro, Tanzania": ("snow", "vegetation", "crops"),
    "Maseru, Lesotho": ("snow", "bare_soil", "crops", "urban"),
}
_DATE0 = _dt.datetime(2018, 1, 1, tzinfo=_dt.timezone.utc)
_N_DAYS = (_dt.datetime(2021, 1, 1, tzinfo=_dt.timezone.utc) - _DATE0).days


def _place(
    rng: np.random.Generator, land_cover: str, size: int
) -> tuple[str, str, Affine, str, float]:
    """Pick a location, CRS, transform, datetime and sun azimuth for a chip."""
    options = [loc for loc in _LOCATIONS if land_cover in _LOCATION_COVERS[loc[0]]]
    name, epsg, east, north, lat, lon = options[int(rng.integers(len(options)))]
    x0 = east + 10.0 * int(rng.integers(-1500, 1500))
    y0 = north + 10.0 * int(rng.integers(-1500, 1500)) + 10.0 * size / 2
    transform = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    while True:
        day = _DATE0 + _dt.timedelta(days=int(rng.integers(_N_DAYS)))
        # seasonal snow away from the tropics lies in the southern winter
        if land_cover != "snow" or lat > -20 or day.month in (6, 7, 8, 9):
            break
    hours = (10.5 - lon / 15.0 + rng.normal(0.0, 0.25)) % 24.0
    when = day + _dt.timedelta(seconds=int(hours * 3600))
    # Sentinel-2 passes at about 10:30 local time: the sun stands to the north-east
    # in the southern hemisphere, to the south-east in the northern one.
    if lat < -5:
        azimuth = rng.uniform(25.0, 75.0)
    elif lat > 5:
        azimuth = rng.uniform(105.0, 155.0)
    else:
        azimuth = rng.uniform(40.0, 140.0)
    return name, f"EPSG:{epsg}", transform, when.strftime("%Y-%m-%dT%H:%M:%SZ"), float(azimuth)
