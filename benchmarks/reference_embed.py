"""A reference-style embedding script, as the published pipelines work, for side-by-side timing.

For each manifest row, one after another: decode **every** frame with OpenCV (videos) or load
the whole volume with nibabel (NIfTI), keep the sampled frames, run the per-frame crop, PIL
grey conversion and resize, encode with the ``pixels`` encoder and ``torch.save`` one file per
sample. It computes the same embedding as ``cardiobench embed --encoder pixels`` (for grey
echo frames; ``extract_throughput.py`` prints the largest difference), so the two can be timed
as whole processes on the same files.

    python benchmarks/reference_embed.py MANIFEST.csv OUT_DIR [--root MEDIA_DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from cardiobench.encoders.pixels import PixelsEncoder


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video (RGB) or NIfTI sequence (grey, displayed orientation)."""
    name = path.name.lower()
    if name.endswith(".nii") or name.endswith(".nii.gz"):
        import nibabel as nib
        vol = np.asarray(nib.load(str(path)).dataobj)
        vol = vol.reshape(vol.shape[0], vol.shape[1], -1)
        return [np.ascontiguousarray(vol[:, :, t].T.astype(np.uint8)) for t in range(vol.shape[2])]
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def frame_input(frame: np.ndarray, encoder: PixelsEncoder) -> torch.Tensor:
    """One frame through the per-frame crop, resize and PIL steps → ``float (3, R, R)``."""
    spec = encoder.spec
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    # EchoCLIP's crop_and_scale: crop the long side to 1:1 (round half to even), then trim
    # int(zoom * side) per side, truncated
    h, w = frame.shape[:2]
    if w > h:
        pad = int(round((w - h) / 2))
        frame = frame[:, pad:w - pad]
    elif h > w:
        pad = int(round((h - w) / 2))
        frame = frame[pad:h - pad]
    h, w = frame.shape[:2]
    th, tw = int(h * spec.zoom), int(w * spec.zoom)
    frame = frame[th:h - th, tw:w - tw]
    # PIL's grey conversion per frame, as the published loaders; torch's area resize so the
    # embedding is the pixels encoder's (PIL's L of a grey frame is the grey value itself)
    grey = np.asarray(Image.fromarray(np.ascontiguousarray(frame)).convert("L"), np.float32)
    small = F.interpolate(torch.from_numpy(grey)[None, None], size=(spec.resolution,) * 2,
                          mode="area")[0]
    return (small / 255.0).expand(3, -1, -1)


def embed(manifest: Path, out: Path, root: Path | None = None) -> int:
    """Embed every row of ``manifest`` into ``out/<sample_id>.pt``; returns the count.

    ``root`` is the folder the manifest's paths are relative to (default: its own folder).
    """
    table = pd.read_csv(manifest)
    base = root if root is not None else manifest.parent
    encoder = PixelsEncoder()
    out.mkdir(parents=True, exist_ok=True)
    for row in table.itertuples():
        frames = decode_all(base / row.path)
        idx = encoder.spec.sampling.indices(len(frames), key_frame=None, fps=row.fps)
        x = torch.stack([frame_input(frames[i], encoder) for i in idx])
        with torch.no_grad():
            per_frame = encoder.encode_frames(x)
            emb = {"embedding_per_frame": per_frame,
                   "embedding_pooled": encoder.pool_frames(per_frame)}
        torch.save(emb, out / f"{row.sample_id}.pt")
    return len(table)


def main() -> None:
    """Command line: ``reference_embed.py MANIFEST.csv OUT_DIR [--root MEDIA_DIR]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--root", type=Path, default=None,
                    help="folder the manifest's paths are relative to (default: its own folder)")
    args = ap.parse_args()
    embed(args.manifest, args.out, args.root)


if __name__ == "__main__":
    main()
