"""What checking the media against the manifest costs: the stat pre-check, the content hash,
and decoding (for scale), on the same files.

Prints, per file set, the median over repeats of:

- **stat check**: :func:`cardiobench.io.identity.current_media` when every file's stat key equals
  the recorded one (what every ``embed``/``evaluate`` pays when nothing changed);
- **hash all**: the same call with no recorded stat, so every file is read and hashed (what a
  copied or moved download costs once, and what ``prepare`` adds);
- **decode one frame**: ``read_frames(path, [0])`` per file, for comparison with work every
  embed does anyway.

Warm page cache (the files were just written); a cold network disk reads 2 MiB per file more
slowly, which only the hash pays. Usage: ``python benchmarks/media_identity.py``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from cardiobench.io import read_frames
from cardiobench.io.identity import current_media, identify_all
from cardiobench.phantom import generate


def _median(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, files: list[Path], decode: bool) -> None:
    ids = [str(i) for i in range(len(files))]
    known = identify_all(files, desc="recording")
    stats, hashes = [k.stat for k in known], [k.hash for k in known]
    stat_s = _median(lambda: current_media(ids, files, stats, hashes))
    # a different stat key forces the read; the memo is keyed on the stat, so clear it each time
    import cardiobench.io.identity as identity

    def hash_all() -> None:
        identity._MEMO.clear()
        current_media(ids, files, None, hashes)

    hash_s = _median(hash_all)
    size = sum(f.stat().st_size for f in files) / len(files) / 2**20
    line = (f"{name:34s} {len(files):6d} files, {size:6.2f} MiB each: stat check "
            f"{1e3 * stat_s:8.1f} ms ({1e6 * stat_s / len(files):6.1f} us/file), hash all "
            f"{1e3 * hash_s:8.1f} ms ({1e3 * hash_s / len(files):6.3f} ms/file)")
    if decode:
        dec_s = _median(lambda: [read_frames(f, [0]) for f in files], repeats=3)
        line += f", decode one frame {1e3 * dec_s / len(files):6.3f} ms/file"
    print(line, flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate("echonet_dynamic", root / "tiny", scale="tiny", seed=0)
        measure("tiny EchoNet-Dynamic phantom (AVI)", sorted((root / "tiny").glob("Videos/*")),
                decode=True)
        generate("echonet_dynamic", root / "demo", scale="demo", seed=0)
        measure("demo EchoNet-Dynamic phantom (AVI)", sorted((root / "demo").glob("Videos/*")),
                decode=True)
        big = root / "big"
        big.mkdir()
        payload = bytes(range(256)) * (3 * 2**20 // 256)  # 3 MiB: the hash reads 2 of them
        files = []
        for i in range(200):
            f = big / f"v{i:04d}.bin"
            f.write_bytes(payload[i:] + payload[:i])
            files.append(f)
        measure("3 MiB files (hash reads 2 MiB)", files, decode=False)


if __name__ == "__main__":
    main()
