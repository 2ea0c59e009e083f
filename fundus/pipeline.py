"""The public entry points: bytes or an RGB array -> model input + quality verdict."""

from __future__ import annotations

from fundus.config import DecodeLimits, PreprocessConfig
from fundus.decode import decode_image
from fundus.preprocess import ben_graham, crop_to_square, locate_disc, resize_square
from fundus.quality import ANALYSIS_SIZE, QualityThresholds, assess_quality
from fundus.types import ImageFormat, ImageInfo, Preprocessed, RGBImage


def preprocess_image(
    image: RGBImage,
    config: PreprocessConfig,
    info: ImageInfo | None = None,
    thresholds: QualityThresholds | None = None,
) -> Preprocessed:
    """Crop to the disc, pad square, resize to S, optional Ben Graham; assess quality."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype.name != "uint8":
        raise ValueError(f"expected uint8 [H, W, 3], got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if info is None:
        info = ImageInfo(ImageFormat.PNG, width, height, width, height)
    geometry = locate_disc(image, config.crop_threshold)
    square = crop_to_square(image, geometry.bbox)
    source_scale = info.source_width / max(1, info.decoded_width)
    analysis = resize_square(square, ANALYSIS_SIZE)
    quality = assess_quality(analysis, geometry, config.crop_threshold, source_scale, thresholds)
    output = analysis if config.size == ANALYSIS_SIZE else resize_square(square, config.size)
    if config.ben_graham:
        output = ben_graham(output, config)
    return Preprocessed(image=output, quality=quality, info=info)


def load_and_preprocess(
    data: bytes,
    config: PreprocessConfig,
    limits: DecodeLimits | None = None,
    thresholds: QualityThresholds | None = None,
) -> Preprocessed:
    """Decode ``data`` (JPEG/PNG/TIFF/DICOM) and preprocess it for the model.

    Raises only ``fundus.FundusError`` subclasses for bad input. Large JPEGs are decoded at
    reduced scale, but never below the quality gate's analysis size, so the verdict does not
    depend on the model's input size.
    """
    target = max(config.size, ANALYSIS_SIZE)
    image, info = decode_image(data, limits, target_size=target)
    return preprocess_image(image, config, info, thresholds)
