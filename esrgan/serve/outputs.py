"""Names of the web app's outputs: they carry the model, fit any file system, and never collide in a job.

``photo.png`` through RealESRGAN_x4plus is ``photo_RealESRGAN_x4plus_x4.png``; through a blend of two
checkpoints at 0.8 ``photo_psnr-gan-a0.80_x4.png``. The bytes are those ``esrgan upscale`` writes for the same
input, model and settings (``esrgan upscale --suffix _RealESRGAN_x4plus_x4``): the name and encoder come from
the command's own ``output_file``. Long names are shortened (the stem, never the model or scale) to keep
within ``MAX_NAME_BYTES``; two files whose shortened stems meet are numbered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from esrgan.inference.files import OutputClashError, OutputGuard, output_file, scale_suffix
from esrgan.serve.jobs import Settings, Variant
from esrgan.serve.uploads import safe_name, truncate_bytes
from esrgan.utils.folders import MAX_NAME_BYTES, check_folder_name

MAX_TAG_BYTES = 60  # a model's part of a name
_EXT_ROOM = 6  # '.webp' and a dot to spare
WRITABLE = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # formats "same as input" can keep

Tagger = Callable[[str], str]  # a model spec -> its short name (ModelCatalog.tag)

__all__ = ["OutputClashError", "OutputGuard", "output_stems", "output_target", "variant_tag", "zip_name"]


def _tag(text: str) -> str:
    return truncate_bytes(safe_name(text, set(), limit=MAX_TAG_BYTES).replace(" ", "_"), MAX_TAG_BYTES)


def variant_tag(variant: Variant, tag: Tagger) -> str:
    """The model's part of an output name; ``tag`` gives a model spec's short name."""
    if variant.model_b is not None and variant.alpha is not None:
        return _tag(f"{tag(variant.model)}-{tag(variant.model_b)}-a{variant.alpha:.2f}")
    return _tag(tag(variant.model))


def _suffix(variant_tag_: str, final_scale: float) -> str:
    return f"_{variant_tag_}{scale_suffix(final_scale)}"


def output_stems(names: list[str], longest_suffix: int) -> list[str]:
    """A stem per input name, unique in the job (case-insensitive), short enough for any suffix of the job."""
    room = MAX_NAME_BYTES - longest_suffix - _EXT_ROOM
    taken: set[str] = set()
    return [safe_name(Path(name).stem, taken, limit=room) for name in names]


def longest_suffix(variants: list[Variant], tag: Tagger, final_scales: list[float]) -> int:
    return max(len(_suffix(variant_tag(v, tag), s).encode("utf-8")) for v in variants for s in final_scales)


def output_target(stem: str, input_name: str, folder: Path, variant: Variant, tag: Tagger,
                  result: np.ndarray, final_scale: float, settings: Settings) -> tuple[Path, list[int]]:
    """Where one output goes and its encoder parameters (as ``esrgan upscale`` with the same suffix and format)."""
    src = Path(stem + Path(input_name).suffix.lower()[:_EXT_ROOM - 1])
    suffix = _suffix(variant_tag(variant, tag), final_scale)
    ext = settings.format
    if ext == "auto" and src.suffix not in WRITABLE:  # an upload named .txt, .gif or nothing: PNG
        ext = "png"
    dst, params = output_file(src, folder, result, final_scale, suffix=suffix, ext=ext, quality=settings.quality)
    check_folder_name(dst.name, "output name")
    return dst, params


def zip_name(names: list[str]) -> str:
    """The zip of a job, named after its inputs: ``photo_upscaled.zip``, ``photo_and_3_more_upscaled.zip``."""
    first = truncate_bytes(Path(names[0]).stem if names else "images", 80).rstrip(" .") or "images"
    more = f"_and_{len(names) - 1}_more" if len(names) > 1 else ""
    return check_folder_name(f"{first}{more}_upscaled.zip", "zip name")
