"""Encoders behind one protocol; importing this package registers every built-in wrapper."""

from cardiobench.encoders.base import Encoder, InputSpec
from cardiobench.encoders.registry import available_encoders, build_encoder, register_encoder
from cardiobench.encoders import pixels  # noqa: F401  (registers "pixels")

__all__ = ["Encoder", "InputSpec", "available_encoders", "build_encoder", "register_encoder"]
from cardiobench.encoders import open_clip as _open_clip  # noqa: F401,E402  (echoclip, echoclip-r, biomedclip, siglip2, random-clip, open_clip)
from cardiobench.encoders import timm_image  # noqa: F401,E402  (dinov3, timm)
from cardiobench.encoders import torchvision_video  # noqa: F401,E402  (echoprime, r2plus1d_18, mvit_v2_s)
from cardiobench.encoders import panecho  # noqa: F401,E402  (panecho)
