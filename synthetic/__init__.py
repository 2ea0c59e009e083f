"""Deterministic synthetic fundus photographs (and non-fundus pictures) plus file encoders.

Used by tests, demos and CI when no real data is available. Everything is pure numpy + OpenCV +
Pillow + pydicom (never TensorFlow) and fully deterministic: the same arguments always give the
same array / the same bytes.

Design notes
------------
* One ``numpy.random.default_rng(seed)`` is split (``Generator.spawn``) into independent streams
  for the background, the lesions and the fine sensor noise. The background and the noise never
  depend on ``grade``, so for a given seed and size every grade shares the identical retina and
  only the lesions differ.
* Lesion sets are nested: each lesion type draws a fixed candidate list and one uniform number
  from its own stream; the grade only decides how many candidates are used (per-grade count
  ranges are non-decreasing), so grade ``g + 1`` contains every lesion of grade ``g``.
* The retina is drawn for a right eye (optic disc right of the fovea) at a working resolution
  whose long side is at most 1024 px (and whose short side is at least 256 px when that fits);
  a left eye is the horizontal mirror. The drawing is then resized to the requested size, fine
  noise is added at the final resolution and everything outside the circular field is zeroed.
* Sizes are all relative to the disc radius, so any size from ~28 px to 5000 px works.

CLI: ``python -m synthetic --grade 2 --size 1024x768 --seed 3 --format jpeg --out x.jpg``
"""

from synthetic.cli import main
from synthetic.dicom import DICOM_SOP_CLASSES, DICOM_TRANSFER_SYNTAXES, encode_dicom
from synthetic.encoders import encode_jpeg, encode_png, encode_tiff
from synthetic.non_fundus import NON_FUNDUS_KINDS, synthesize_non_fundus
from synthetic.photo import synthesize_fundus

__all__ = [
    "DICOM_SOP_CLASSES",
    "DICOM_TRANSFER_SYNTAXES",
    "NON_FUNDUS_KINDS",
    "encode_dicom",
    "encode_jpeg",
    "encode_png",
    "encode_tiff",
    "main",
    "synthesize_fundus",
    "synthesize_non_fundus",
]
