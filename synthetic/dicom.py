"""DICOM Part 10 encoder (ophthalmic photography / secondary capture) built with pydicom."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, generate_uid

from fundus.types import Laterality, RGBImage
from synthetic.encoders import check_rgb, gray, jpeg_bytes

DICOM_SOP_CLASSES: dict[str, str] = {
    "op8": "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit Image Storage
    "op16": "1.2.840.10008.5.1.4.1.1.77.1.5.2",  # Ophthalmic Photography 16 Bit Image Storage
    "sc": "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
}
DICOM_TRANSFER_SYNTAXES: dict[str, str] = {
    "explicit_le": "1.2.840.10008.1.2.1",
    "implicit_le": "1.2.840.10008.1.2",
    "jpeg_baseline": "1.2.840.10008.1.2.4.50",
    "jpeg_lossless": "1.2.840.10008.1.2.4.70",
}


def encode_dicom(
    image: RGBImage,
    *,
    transfer_syntax: str = "explicit_le",
    sop_class: str = "op8",
    laterality: Laterality | None = "R",
    monochrome: bool = False,
    bits: int = 8,
    patient_name: str = "SYNTHETIC^PATIENT",
    patient_id: str = "SYN0001",
    patient_birth_date: str = "19700101",
    with_preamble: bool = True,
    number_of_frames: int = 1,
    seed: int = 0,
) -> bytes:
    """DICOM Part 10 file bytes built with pydicom.

    transfer_syntax: "explicit_le", "implicit_le", "jpeg_baseline" (Pillow baseline JPEG,
    quality 92, 4:2:2 chroma subsampling, one encapsulated fragment per frame with a Basic Offset
    Table; YBR_FULL_422 for colour, MONOCHROME2 for grey) or "jpeg_lossless" (raises
    NotImplementedError: no installed library can encode JPEG Lossless Process 14).
    sop_class: "op8", "op16" or "sc". bits: 8 or 16 (16 only uncompressed; samples = value*257).
    UIDs are derived from ``seed`` only, so the same seed gives the same UIDs.
    with_preamble=False returns exactly the with_preamble=True bytes minus their first 132 bytes
    (the 128-byte preamble and b"DICM"): the File Meta group (0002,xxxx, explicit VR LE) followed
    by the dataset; ``pydicom.dcmread(..., force=True)`` reads it.
    number_of_frames > 1 repeats the frame and sets NumberOfFrames.
    """
    rgb = check_rgb(image)
    if transfer_syntax not in DICOM_TRANSFER_SYNTAXES:
        raise ValueError(
            f"unknown transfer_syntax {transfer_syntax!r}; expected one of "
            f"{tuple(DICOM_TRANSFER_SYNTAXES)}"
        )
    if sop_class not in DICOM_SOP_CLASSES:
        raise ValueError(
            f"unknown sop_class {sop_class!r}; expected one of {tuple(DICOM_SOP_CLASSES)}"
        )
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if laterality not in (None, "L", "R"):
        raise ValueError(f"laterality must be 'L', 'R' or None, got {laterality!r}")
    if number_of_frames < 1:
        raise ValueError(f"number_of_frames must be >= 1, got {number_of_frames}")
    if transfer_syntax == "jpeg_lossless":
        raise NotImplementedError(
            "JPEG Lossless (1.2.840.10008.1.2.4.70) encoding needs an encoder that is not "
            "installed (pylibjpeg-libjpeg only decodes; Pillow only writes DCT-based JPEG)"
        )
    compressed = transfer_syntax == "jpeg_baseline"
    if compressed and bits != 8:
        raise ValueError("bits=16 is only supported for uncompressed transfer syntaxes")

    # "fundus.synthetic" (the module's old path) stays in the UID entropy and Manufacturer so
    # files and UIDs remain byte-identical to those made before the package moved.
    def uid(role: str) -> UID:
        return generate_uid(entropy_srcs=["fundus.synthetic", role, str(int(seed))])

    ts_uid = UID(DICOM_TRANSFER_SYNTAXES[transfer_syntax])
    sop_uid = UID(DICOM_SOP_CLASSES[sop_class])
    instance_uid = uid("sop-instance")

    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_uid
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = ts_uid
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "FUNDUS_SYNTH"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if sop_class != "sc" else ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = sop_uid
    ds.SOPInstanceUID = instance_uid
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.ContentDate = "20240101"
    ds.ContentTime = "120000"
    ds.AccessionNumber = f"SYNACC{int(seed) % 1000000:06d}"
    ds.Modality = "OP"
    ds.Manufacturer = "fundus.synthetic"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic fundus photograph"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = patient_birth_date
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uid("study")
    ds.SeriesInstanceUID = uid("series")
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    if sop_class == "sc":
        ds.ConversionType = "WSD"
    if laterality is not None:
        ds.ImageLaterality = laterality
    ds.BurnedInAnnotation = "NO"

    pixels = gray(rgb) if monochrome else rgb
    rows, cols = int(pixels.shape[0]), int(pixels.shape[1])
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = 1 if monochrome else 3
    if not monochrome:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if number_of_frames > 1:
        ds.NumberOfFrames = number_of_frames
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
        ds.FrameTime = 1000.0

    if compressed:
        ds.PhotometricInterpretation = "MONOCHROME2" if monochrome else "YBR_FULL_422"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        pil = Image.fromarray(pixels, "L" if monochrome else "RGB")
        frame = jpeg_bytes(pil, 92, "4:2:2")
        ds.PixelData = encapsulate([frame] * number_of_frames)
        ds["PixelData"].VR = "OB"
    else:
        ds.PhotometricInterpretation = "MONOCHROME2" if monochrome else "RGB"
        ds.LossyImageCompression = "00"
        samples = pixels.astype("<u2") * np.uint16(257) if bits == 16 else pixels
        data = samples.tobytes()
        data = data * number_of_frames
        if len(data) % 2:
            data += b"\x00"
        ds.PixelData = data
        ds["PixelData"].VR = "OW" if bits == 16 else "OB"

    ds.preamble = b"\x00" * 128
    buf = io.BytesIO()
    dcmwrite(
        buf,
        ds,
        implicit_vr=transfer_syntax == "implicit_le",
        little_endian=True,
        enforce_file_format=True,
    )
    out = buf.getvalue()
    return out if with_preamble else out[132:]
