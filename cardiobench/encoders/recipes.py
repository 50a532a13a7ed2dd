"""Named preprocessing recipes per published encoder: the pixels each model's authors fed it.

Every recipe is an :class:`~cardiobench.encoders.base.InputSpec` whose ``recipe`` field carries
its name, so choosing one changes the encoder fingerprint (embedding cache key) and shows in
every result's ``encoder.spec``. Select one with ``--encoder-arg recipe=NAME``.

- ``authors`` (the default everywhere): the model authors' own inference code, reproduced to the
  grey level: interpolation library and kernel, antialias or not, rounding of trims and crops
  (non-square where theirs is), channel order, value range and frame sampling. Checked against
  golden outputs of the official code (``tests/test_golden_preprocessing.py``).
- ``paper``: the published CardioBench pipeline, for the two encoders it ran (EchoCLIP and
  BiomedCLIP): the benchmark's own ``crop_and_scale`` (its ``src/video.py``) on every frame (cv2
  BGR frames kept as BGR), then open_clip's ``preprocess_val`` (the identity on a 224×224 crop,
  then ToTensor and the model's mean/std), 16 consecutive frames from the key frame without
  padding. Its zoom trim is **rounded** (``int(round(0.1·side))``, crop ``echo_round``) where
  EchoCLIP's own ``crop_and_scale`` truncates (``int(0.1·side)``, the ``authors`` recipes of
  EchoCLIP and EchoPrime); the two differ wherever 0.1 × the side left after the square crop has
  a fractional part ≥ .5. Use it to reproduce the paper's numbers.
- ``authors-mp4`` (EchoPrime) and ``authors-ynhhs`` (PanEcho): the authors' second loader (see
  :func:`echoprime_spec` and :func:`panecho_spec` for why they are not the default).
"""

from __future__ import annotations

from cardiobench.encoders.base import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, InputSpec
from cardiobench.transforms import SamplingPolicy

ECHOPRIME_MEAN = (29.110628, 28.076836, 29.096405)
ECHOPRIME_STD = (47.989223, 46.456997, 47.20083)
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)

#: the published benchmark's frames: ``range(clamp(key_frame), n)[:16]``, never padded
PAPER_SAMPLING = SamplingPolicy(kind="consecutive", n_frames=16, stride=1, start="key_frame", pad="none")

#: EchoCLIP's ``crop_and_scale(frame, (224, 224))`` on cv2 frames: BGR kept, INTER_CUBIC uint8
_CROP_AND_SCALE = dict(kind="image", resolution=224, crop="echo", zoom=0.1, interpolation="bicubic",
                       resampler="cv2", value_range=1.0, channel_order="BGR")

#: EchoCLIP's official examples sample ``video[0:40:2]``. We start at the dataset's key frame where
#: it has one (LVH, SegRWMA; frame 0 elsewhere, as the examples) and never pad: repeated frames
#: would weigh the last frame in the pooled clip vector.
ECHOCLIP_AUTHORS = InputSpec(**_CROP_AND_SCALE, mean=CLIP_MEAN, std=CLIP_STD, recipe="authors",
                             sampling=SamplingPolicy(kind="consecutive", n_frames=20, stride=2,
                                                     start="key_frame", pad="none"))
#: the published benchmark's ``src/video.py`` ``crop_and_scale``: EchoCLIP's window with the zoom
#: trim rounded (and skipped where it would leave nothing)
_PAPER_CROP_AND_SCALE = {**_CROP_AND_SCALE, "crop": "echo_round"}

ECHOCLIP_PAPER = InputSpec(**_PAPER_CROP_AND_SCALE, mean=CLIP_MEAN, std=CLIP_STD, recipe="paper",
                           sampling=PAPER_SAMPLING)

#: BiomedCLIP's open_clip eval transform on RGB PIL images: Resize(224) on the short side (long
#: side truncated), PIL bicubic, CenterCrop(224), ToTensor, OpenAI CLIP mean/std.
BIOMEDCLIP_AUTHORS = InputSpec(kind="image", resolution=224, crop="center", interpolation="bicubic",
                               resampler="pil", mean=CLIP_MEAN, std=CLIP_STD, value_range=1.0,
                               channel_order="RGB", recipe="authors")
BIOMEDCLIP_PAPER = InputSpec(**_PAPER_CROP_AND_SCALE, mean=CLIP_MEAN, std=CLIP_STD, recipe="paper",
                             sampling=PAPER_SAMPLING)

#: SigLIP 2 (open_clip ``_slpcfg``): squash to 224×224, PIL bicubic, mean = std = 0.5, RGB.
SIGLIP2_AUTHORS = InputSpec(kind="image", resolution=224, crop="squash", interpolation="bicubic",
                            resampler="pil", mean=SIGLIP_MEAN, std=SIGLIP_STD, value_range=1.0,
                            channel_order="RGB", recipe="authors")

#: DINOv3 ViT-S/16 (timm pretrained cfg): short side to 256 (crop_pct 1.0), PIL bicubic,
#: CenterCrop(256), ImageNet mean/std, RGB.
DINOV3_AUTHORS = InputSpec(kind="image", resolution=256, crop="center", crop_pct=1.0,
                           interpolation="bicubic", resampler="pil", mean=IMAGENET_MEAN,
                           std=IMAGENET_STD, value_range=1.0, channel_order="RGB", recipe="authors")


def echoprime_spec(recipe: str = "authors") -> InputSpec:
    """EchoPrime: ``crop_and_scale`` to 224 per frame, 0–255 values, its own mean/std, frames
    ``0:32:2`` (16 slots; slots past the clip's end are zeros *after* normalisation, which
    :class:`~cardiobench.encoders.torchvision_video.EchoPrimeEncoder` adds).

    ``authors`` is the DICOM path (``process_dicoms`` after ``mask_outside_ultrasound``, whose
    last step converts to **BGR**): the official demo and the path the model was trained on.
    ``authors-mp4`` is ``process_mp4s``, which reads with torchvision (**RGB**); same geometry.
    ``mask_outside_ultrasound`` itself (DICOM/YCbCr, content-dependent) is not applied: our inputs
    are decoded videos, not DICOMs.
    """
    orders = {"authors": "BGR", "authors-mp4": "RGB"}
    if recipe not in orders:
        raise ValueError(f"echoprime has no recipe {recipe!r}; recipes: {', '.join(orders)}")
    geometry = {**_CROP_AND_SCALE, "kind": "video", "channel_order": orders[recipe], "value_range": 255.0}
    return InputSpec(**geometry, mean=ECHOPRIME_MEAN, std=ECHOPRIME_STD, recipe=recipe,
                     sampling=SamplingPolicy(kind="consecutive", n_frames=16, stride=2,
                                             start="zero", pad="none"))


def panecho_spec(recipe: str = "authors", clip_len: int = 16) -> InputSpec:
    """PanEcho: BGR cv2 frames, ImageNet mean/std on ×1/255 values, ``clip_len`` consecutive frames.

    ``authors`` is the ``EchoNetDynamicDataset`` eval loader (``augment=False``,
    ``normalization='imagenet'``): ``cv2.resize((256, 256), INTER_AREA)`` per frame (aspect
    ignored), then CenterCrop(224). It is the default because it accepts any frame size and is the
    loader of the authors' public evaluation. ``authors-ynhhs`` is the README's ``EchoDataset``
    (YNHHS) loader: the same transforms *without* the 256 resize, i.e. CenterCrop(224) straight on
    the decoded frame (zero-padded when smaller); it assumes frames already prepared by the
    authors' own pipeline. Frames start at the key frame (frame 0 without one) and a short clip
    repeats its last frame, as the loader does; the loader's random start is not reproduced.
    """
    base = dict(kind="video", resolution=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, value_range=1.0,
                channel_order="BGR", recipe=recipe,
                sampling=SamplingPolicy(kind="consecutive", n_frames=clip_len, stride=1,
                                        start="key_frame", pad="repeat_last"))
    if recipe == "authors":
        return InputSpec(**base, crop="squash_center", crop_pct=224 / 256, interpolation="area",
                         resampler="cv2")
    if recipe == "authors-ynhhs":
        return InputSpec(**base, crop="crop_only", interpolation="area", resampler="cv2")
    raise ValueError(f"panecho has no recipe {recipe!r}; recipes: authors, authors-ynhhs")


#: recipe name → InputSpec for the open_clip/timm image encoders
IMAGE_RECIPES: dict[str, dict[str, InputSpec]] = {
    "echoclip": {"authors": ECHOCLIP_AUTHORS, "paper": ECHOCLIP_PAPER},
    "biomedclip": {"authors": BIOMEDCLIP_AUTHORS, "paper": BIOMEDCLIP_PAPER},
    "siglip2": {"authors": SIGLIP2_AUTHORS},
    "dinov3": {"authors": DINOV3_AUTHORS},
}


def image_recipe(encoder: str, recipe: str = "authors") -> InputSpec:
    """The named recipe of an image encoder; an unknown name lists the accepted ones."""
    table = IMAGE_RECIPES[encoder]
    if recipe not in table:
        raise ValueError(f"{encoder} has no recipe {recipe!r}; recipes: {', '.join(table)}")
    return table[recipe]
