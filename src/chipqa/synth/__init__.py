"""Synthetic Sentinel-2-like chips with planted label errors.

This package is chipqa's demo data, napari sample data, test fixture and benchmark
input. It makes four-band (B02 blue, B03 green, B04 red, B08 near-infrared)
surface-reflectance chips that look like Sentinel-2 L2A chips of the On Cloud N
dataset, their true cloud masks, and, on request, wrong masks of the kinds human
annotators really produce.

Physical model
--------------
Every chip is built in reflectance units (0..1) and written as ``round(R * 10 000)``
in uint16, clipped to 1..65 535 on valid pixels; 0 is reserved for nodata.

1. **Surface.** A dominant land cover is mixed with up to three others. Their
   layout comes from seeded power-law ("fractal", spectrum ~ 1/f^beta) random
   fields made with the FFT on a grid larger than the chip (so nothing wraps
   around); lakes and coasts sit in the low ground of a fractal terrain model,
   rivers meander across, crop regions snap to whole field parcels, snow gives
   way to soil and forest below a snow line. Each cover has its own spectrum (a
   few end-members of typical L2A reflectance, jittered per chip) and texture:
   canopy density and crown grain for vegetation; rotated rectangular parcels with
   sharp edges, margins, crop rows and green, ripening, stubble or ploughed states
   for crops; soil end-members, sparse vegetation and tree-lined dry river beds
   for bare soil; a very smooth, slightly turbid surface with brighter shallows
   for water; irregular street blocks of houses (grey, dark or tiled roofs and
   gardens), industry (bright roofs), parks and lots for urban areas; bright snow
   with rock outcrops on steep slopes for snow. The terrain model shades the land
   with the chip's sun (direct light times the cosine of the incidence angle plus
   a band-dependent diffuse part, bluer in the shade): strong relief for snow,
   some for soil and vegetation, little elsewhere, none on water. A 0.5-pixel
   Gaussian blur stands in for the instrument's point-spread function.
2. **Cloud shadows.** The thick-cloud opacity field, computed on a grid larger
   than the chip, is displaced away from the sun by 5-18 % of the chip size and
   slightly blurred; it darkens the surface by ``1 - k_b * alpha_shifted`` with
   ``k_b`` about 0.5 (blue, which still receives blue skylight) to 0.7 (NIR).
   Shadows are not cloud in the label.
3. **Clouds.** Thick cloud opacity is ``1 - exp(-tau)`` with an optical depth
   ``tau`` growing linearly with a fractal field above a threshold, so edges are
   soft and fractal and cores saturate. The cloud top is bright and nearly
   spectrally flat (visible 0.6-1.2, blue slightly highest, NIR equal or a little
   lower), brighter where the cloud is thicker, and shaded by the same sun as a
   relief made of the cloud field, which gives the lumpy texture of cloud tops.
   Pixels mix as ``R = R_surface * (1 - alpha) + R_cloud * alpha``. Some partly
   cloudy chips also get streaky thin cirrus/haze of opacity at most 0.3, blended
   the same way on top.
4. **Skies.** ``overcast`` (about 40 % of a dataset): thick cloud everywhere,
   opacity at least 0.7 and mostly above 0.9, textured white or grey; ``clear``
   (about 10 %): no cloud at all; ``partial`` (about 50 %): a labelled cloud
   fraction between about 5 % and 90 %. The soft fringes and cirrus leave some
   thin, unlabelled cloud (opacity 0.05-0.35) on partly cloudy chips: a median of
   about 5 % of the chip, more where there is cirrus.
5. **True label.** Cloud where the combined opacity exceeds 0.35 (what an
   annotator would call cloud), then smoothed the way a person draws: slightly
   rounded outlines, no specks or pinholes smaller than about 0.04 % of the chip.
   Overcast chips are labelled all cloud and clear chips all clear. Nodata pixels
   (a straight swath edge covering 10-40 % of the chip in some chips) are 0 in
   every band and 255 in the label.
6. **Sensor.** Gaussian noise of standard deviation ``0.0015 + 0.004 R``.

Limits
------
The spectra are plausible averages, not a radiative-transfer simulation: there is
no atmosphere model beyond a small blue offset and the cirrus, no adjacency effect, no BRDF, no
sun glint, no band-to-band misregistration, no parallax between the cloud and its
shadow other than a single shift, and the Sen2Cor SCL (:func:`make_scl`) is a
degraded copy of the truth, not Sen2Cor's algorithm. Clouds are a single
layer (plus optional cirrus). Land-cover textures are statistical, so a trained
eye will tell them from real scenes; they are meant to be good enough for a cloud
detector, a label-quality ranking and a demo to behave as on real chips, and in
particular to contain the classic look-alikes (bright snow, bright roofs, dark
water and shadows).

Planted label errors
--------------------
:func:`generate_dataset` writes a wrong label for a fraction ``error_rate`` of the
chips and keeps every true label in a truth folder outside the dataset. The kinds
(:data:`ERROR_KINDS`) and their shares are ``all_cloud`` 35 %, ``no_cloud`` 35 %,
``shift``, ``swap`` and ``half_missing`` 10 % each; each is planted only on chips
where it is a real error (at least 5 % of the valid pixels change). Everything is
exactly reproducible from the seed: each chip draws from its own
:class:`numpy.random.SeedSequence` child stream.

Modules
-------
Everything public is imported from here; the modules are, in the order a chip is made:

* :mod:`~chipqa.synth.noise`: power-law random fields and the chip's canvas (cropping, sun shading).
* :mod:`~chipqa.synth.places`: location, UTM CRS and transform, date and sun azimuth.
* :mod:`~chipqa.synth.surfaces`: the land-cover renderers and terrain shading (step 1).
* :mod:`~chipqa.synth.clouds`: clouds, cirrus and shadows, the true label, nodata edges
  (steps 2, 3 and 5).
* :mod:`~chipqa.synth.chip`: :func:`make_chip` and :class:`SynthChip` (step 6, assembly).
* :mod:`~chipqa.synth.corruption`: the planted errors (:func:`corrupt_label`).
* :mod:`~chipqa.synth.scl`: the Sen2Cor-like SCL (:func:`make_scl`).
* :mod:`~chipqa.synth.plan`: a dataset's plan (ids, shares, which chip gets which error).
* :mod:`~chipqa.synth.writing`: :func:`generate_dataset` and :func:`write_scene`.
"""

from __future__ import annotations

from chipqa.constants import BANDS, SCL_CLASSES
from chipqa.synth.chip import (
    LAND_COVER_SHARES,
    LAND_COVERS,
    SKIES,
    SKY_SHARES,
    SynthChip,
    make_chip,
)
from chipqa.synth.clouds import LABEL_OPACITY
from chipqa.synth.corruption import ERROR_KINDS, ERROR_SHARES, MIN_CHANGED, corrupt_label
from chipqa.synth.scl import SCL_SHADOW_STRENGTH, make_scl
from chipqa.synth.writing import (
    SCENE_CRS,
    SCENE_ORIGIN,
    SynthResult,
    generate_dataset,
    write_scene,
)

__all__ = [
    "BANDS",
    "ERROR_KINDS",
    "ERROR_SHARES",
    "LABEL_OPACITY",
    "LAND_COVERS",
    "LAND_COVER_SHARES",
    "MIN_CHANGED",
    "SCENE_CRS",
    "SCENE_ORIGIN",
    "SCL_CLASSES",
    "SCL_SHADOW_STRENGTH",
    "SKIES",
    "SKY_SHARES",
    "SynthChip",
    "SynthResult",
    "corrupt_label",
    "generate_dataset",
    "make_chip",
    "make_scl",
    "write_scene",
]
