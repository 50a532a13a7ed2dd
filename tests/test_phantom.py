"""The echo simulator: determinism, cardiac cycle, physics of the picture, pathologies, suite."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from cardiobench.phantom import Scale, generate_suite
from cardiobench.phantom.heart import (VIEWS, HeartParams, ed_es_frames, lv_tracing_lines,
                                       lv_volume_ml, pixel_spacing_cm, plax_calipers,
                                       render_clip, systolic_fraction)

from helpers import CATALOGUE


def _ed_es_fps(p: HeartParams) -> float:
    """fps putting ED at frame 0 and ES at frame 1 (phase0 = 0)."""
    return 1.0 / (systolic_fraction(p.heart_rate_bpm) * 60.0 / p.heart_rate_bpm)


def test_render_is_deterministic_and_well_formed():
    for view in VIEWS:
        p = HeartParams(view=view)
        a = render_clip(p, 4, 50.0, 64, 80, seed=7)
        assert a.shape == (4, 64, 80) and a.dtype == np.uint8
        assert np.array_equal(a, render_clip(p, 4, 50.0, 64, 80, seed=7))
        assert not np.array_equal(a, render_clip(p, 4, 50.0, 64, 80, seed=8))
        assert a[:, 0, :5].max() == 0 and a[:, 0, -5:].max() == 0  # outside the sector: black
        assert a[:, 40, 35:45].mean() > 5  # inside it: echoes


def test_volume_cycle_and_ed_es_frames():
    p = HeartParams(ef=55.0, edv_ml=140.0, heart_rate_bpm=75.0, phase0=0.3)
    fps, n = 50.0, 120
    v = lv_volume_ml(p, np.arange(n) / fps)
    assert v.max() == pytest.approx(140.0, abs=0.5) and v.min() == pytest.approx(63.0, abs=0.5)
    eds, ess = ed_es_frames(p, n, fps)
    cycle = 60.0 / 75.0 * fps
    assert len(eds) == 3 and len(ess) == 3  # 2.4 s at 0.8 s per beat
    assert eds[1] - eds[0] == pytest.approx(cycle, abs=1)
    for f in eds:
        assert v[f] >= v[max(f - 1, 0)] and v[f] >= v[min(f + 1, n - 1)]
    for f in ess:
        assert v[f] <= v[max(f - 1, 0)] and v[f] <= v[min(f + 1, n - 1)]
    # systole is faster than diastole
    es_after = [e for e in ess if e > eds[0]][0]
    assert es_after - eds[0] < 0.5 * cycle


def _cavity_dark_fraction(frame: np.ndarray, poly: np.ndarray) -> float:
    mask = np.zeros(frame.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    sm = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 1.0)
    return float((sm[mask > 0] < 45).mean())


def test_lv_area_change_tracks_ef():
    rng = np.random.default_rng(0)
    efs, changes = [], []
    for k in range(20):
        ef = float(rng.uniform(15, 75))
        p = HeartParams(ef=ef, heart_rate_bpm=float(rng.uniform(55, 100)),
                        gain=float(rng.uniform(0.85, 1.2)))
        fps = _ed_es_fps(p)
        assert ed_es_frames(p, 2, fps) == ([0], [1])
        clip = render_clip(p, 2, fps, 112, 112, seed=k)
        lines = lv_tracing_lines(p, 0.0, 112, 112, seed=k)
        chords = lines[1:13]  # apical 60 % of the ED cavity: away from the moving base/LA
        poly = np.concatenate([chords[:, :2], chords[::-1, 2:]])
        ed_dark = _cavity_dark_fraction(clip[0], poly)
        es_dark = _cavity_dark_fraction(clip[1], poly)
        assert ed_dark > 0.8  # the traced ED cavity is blood
        efs.append(ef)
        changes.append(1.0 - es_dark / ed_dark)
    rho = spearmanr(efs, changes).statistic
    assert rho > 0.8, (rho, efs, changes)


def test_tracing_area_is_larger_at_ed():
    p = HeartParams(ef=50.0)
    fps = _ed_es_fps(p)

    def area(lines: np.ndarray) -> float:
        poly = np.concatenate([lines[1:, :2], lines[:0:-1, 2:]]).astype(np.float32)
        return float(cv2.contourArea(poly))

    ed, es = area(lv_tracing_lines(p, 0.0, 112, 112, 1)), area(lv_tracing_lines(p, 1 / fps,
                                                                                 112, 112, 1))
    assert es / ed == pytest.approx(0.5 ** 0.6, rel=0.03)  # area ∝ (V/EDV)^0.6


@pytest.mark.parametrize("ivsd,lvpwd", [(0.8, 1.0), (1.4, 0.9), (1.8, 1.5)])
def test_plax_wall_thickness_in_cm(ivsd, lvpwd):
    h = w = 224
    p = HeartParams(view="PLAX", ivsd_cm=ivsd, lvpwd_cm=lvpwd, lvidd_cm=5.0)
    frame = render_clip(p, 1, 50.0, h, w, seed=3)[0].astype(np.float32)
    sp = pixel_spacing_cm(p, h)
    cal = plax_calipers(p, h, w, seed=3)
    for name, truth in (("IVSd", ivsd), ("LVPWd", lvpwd), ("LVIDd", 5.0)):
        x1, y1, x2, y2 = cal[name]
        assert math.hypot(x2 - x1, y2 - y1) * sp == pytest.approx(truth, rel=1e-6)
    # measure the septum on the picture: bright run along the IVSd caliper line
    x1, y1, x2, y2 = cal["IVSd"]
    ux, uy = (x2 - x1), (y2 - y1)
    n = math.hypot(ux, uy)
    ux, uy = ux / n, uy / n
    s = np.arange(-1.0 / sp, (ivsd + 1.0) / sp, 0.25)  # 1 cm margin each side, 1/4 px steps
    profiles = []
    for off in np.linspace(-6, 6, 13):  # average parallel lines to beat the speckle
        xs = x1 + s * ux - off * uy
        ys = y1 + s * uy + off * ux
        profiles.append(cv2.remap(frame, xs[None].astype(np.float32), ys[None].astype(np.float32),
                                  cv2.INTER_LINEAR)[0])
    prof = cv2.GaussianBlur(np.mean(profiles, 0)[None], (0, 0), 1.5)[0]
    level = 0.5 * (np.median(prof[: int(0.5 / sp / 0.25)]) + prof.max())
    bright = np.flatnonzero(prof > level)
    measured = (bright[-1] - bright[0] + 1) * 0.25 * sp
    assert measured == pytest.approx(ivsd, abs=sp), (measured, ivsd, sp)


def _diff(base: HeartParams, **change) -> tuple[np.ndarray, np.ndarray]:
    fps = _ed_es_fps(base)
    a = render_clip(base, 2, fps, 112, 112, seed=5).astype(np.float32)
    b = render_clip(replace(base, **change), 2, fps, 112, 112, seed=5).astype(np.float32)
    return a, b


def test_asd_opens_the_interatrial_septum():
    a, b = _diff(HeartParams(view="A4C"), asd=True)
    changed = np.abs(a - b)[0] > 20
    ys, xs = np.nonzero(changed)
    assert 10 < changed.sum() < 300  # a local gap, not a different picture
    assert b[0][changed].mean() < a[0][changed].mean() - 40  # septal tissue → dark blood
    assert ys.mean() > 0.65 * 112  # between the atria, low in the sector
    # other views do not show it
    a2, b2 = _diff(HeartParams(view="A2C"), asd=True)
    assert np.array_equal(a2, b2)


def test_pah_dilates_the_right_heart():
    for view in ("A4C", "PSAX"):
        a, b = _diff(HeartParams(view=view), pah=True)
        left = slice(0, 48)  # the right heart lies on the viewer's left
        dark_a = (cv2.GaussianBlur(a[0], (0, 0), 1.0)[:, left] < 40).sum()
        dark_b = (cv2.GaussianBlur(b[0], (0, 0), 1.0)[:, left] < 40).sum()
        assert dark_b > 1.1 * dark_a, (view, dark_a, dark_b)


def test_aortic_stenosis_thickens_the_valve():
    base = HeartParams(view="PLAX")
    a, b = _diff(base, aortic_stenosis=True)
    changed = np.abs(a - b) > 25
    ys, xs = np.nonzero(changed.any(0))
    assert xs.mean() > 56  # the aortic root is on the right of PLAX
    assert (b > 200).sum() > (a > 200).sum() + 20  # more bright (calcified) valve
    a4, b4 = _diff(HeartParams(view="A4C"), aortic_stenosis=True)
    assert np.array_equal(a4, b4)


def test_akinetic_segment_stays_at_ed():
    base = HeartParams(view="A4C", ef=60.0)
    a, b = _diff(base, akinetic_segment="septal")
    assert np.abs(a[0] - b[0]).mean() < 0.5  # ED is unchanged
    es_change = np.abs(a[1] - b[1]) > 25
    ys, xs = np.nonzero(es_change)
    assert es_change.sum() > 30
    lateral = _diff(base, akinetic_segment="lateral")[1]
    xs_l = np.nonzero(np.abs(a[1] - lateral[1]) > 25)[1]
    assert xs.mean() < xs_l.mean() - 10  # septal change lies left of the lateral one


def test_generate_suite_writes_truth_outside_raw_roots(tmp_path):
    mini = Scale("mini", n_samples=3, n_frames=32, size=32)
    roots = generate_suite(tmp_path, [CATALOGUE.layout("echonet_dynamic")], scale=mini, seed=0)
    assert set(roots) == {"echonet_dynamic"}
    assert roots["echonet_dynamic"] == tmp_path / "EchoNet-Dynamic"
    truth = pd.read_csv(tmp_path / "_truth" / "echonet_dynamic.csv")
    assert list(truth.columns[:3]) == ["sample_id", "patient_id", "split"] and len(truth) == 3
    assert sorted(p.name for p in roots["echonet_dynamic"].iterdir()) == [
        "FileList.csv", "Videos", "VolumeTracings.csv"]
    with pytest.raises(KeyError):
        CATALOGUE.layout("nope")


def test_layout_content_does_not_depend_on_the_other_layouts(tmp_path):
    from cardiobench.phantom import generate
    from cardiobench.phantom.layouts.common import layout_seed

    mini = Scale("mini", n_samples=12, n_frames=2, size=16)
    generate_suite(tmp_path / "a", [CATALOGUE.layout("hmcqu")], scale=mini, seed=5)
    generate_suite(tmp_path / "b", [CATALOGUE.layout(n) for n in ("cardiacnet", "hmcqu")],
                   scale=mini, seed=5)
    alone = pd.read_csv(tmp_path / "a" / "_truth" / "hmcqu.csv")
    pd.testing.assert_frame_equal(alone, pd.read_csv(tmp_path / "b" / "_truth" / "hmcqu.csv"))
    direct = generate(CATALOGUE.layout("hmcqu"), tmp_path / "c", scale=mini,
                      seed=layout_seed(5, "hmcqu"))
    assert direct["stemi"].tolist() == alone["stemi"].tolist()
    for sheet in ("A4C.xlsx", "A2C.xlsx"):  # the native label sheets agree cell for cell
        pd.testing.assert_frame_equal(pd.read_excel(tmp_path / "a" / "HMC-QU" / sheet),
                                      pd.read_excel(tmp_path / "b" / "HMC-QU" / sheet))


def test_shared_clips_scale_reuses_one_clip_per_label():
    from cardiobench.phantom.layouts import SCALES
    from cardiobench.phantom.layouts.common import cached_clip, clip_seed

    ids, tiny = SCALES["ids"], SCALES["tiny"]
    assert ids.shared_clips and not tiny.shared_clips
    assert clip_seed(ids, 7, 3) == clip_seed(ids, 8, 4) == 0
    assert clip_seed(tiny, 7, 3) == 7 * 100_003 + 3 != clip_seed(tiny, 7, 4)
    p = HeartParams(view="A4C", ef=60.0, phase0=0.0)
    assert cached_clip(p, 2, 16, 0) is cached_clip(p, 2, 16, 0)
