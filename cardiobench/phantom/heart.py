"""A small, physically grounded echocardiography simulator: the phantom suite's only picture source.

Model (all geometry in cm, in the *anatomical* frame: origin at the probe, ``x`` to the viewer's
right, ``y`` = depth; probe jitter then rotates/shifts the anatomy inside the fixed sector):

* **Cardiac cycle.** Phase ``phi = phase0 + t * HR / 60 (mod 1)``; ED at ``phi = 0``, ES at
  ``phi = s`` where the systolic fraction ``s`` (0.30-0.45 of the cycle, shorter at low heart rate)
  makes systole faster than diastole. LV volume falls from EDV to ``ESV = EDV (1 - EF/100)`` by a
  half-cosine and refills by another (smooth, zero slope at ED and ES).
* **LV shape.** A prolate ellipsoid, ``V = pi/6 L D^2``: the ED short axis is ``lvidd_cm``, the ED
  long axis follows from ``edv_ml`` (ratio L/D clamped to [1.4, 2.4] so odd inputs stay heart
  shaped). Over the cycle ``D ~ (V/EDV)^0.4`` and ``L ~ (V/EDV)^0.2`` (the short axis shortens more
  than the long one, as in real hearts), so the drawn cavity area scales as ``(V/EDV)^0.6`` and EF
  is carried by the picture. Walls thicken in systole (``w ~ (D_ed/D)^0.5``). In PLAX the septum,
  cavity and posterior wall at ED are exactly ``ivsd_cm``, ``lvidd_cm`` and ``lvpwd_cm`` at the
  pixel spacing ``depth_cm / height``.
* **Views** as a sonographer sees them (apex at the top in apical views, LV on the viewer's right
  in A4C; PLAX with RV on top, horizontal LV, aortic root and LA on the right; PSAX at papillary
  level with an RV crescent).
* **Pathologies** only where they show: ASD (gap in the interatrial septum, A4C), PAH (dilated RV
  and RA, septum flattened towards the LV: A4C, PSAX, PLAX RV), akinetic segment (that wall sector
  keeps its ED position and thickness; see :data:`VISIBLE_SEGMENTS`), aortic stenosis (thick,
  bright, restricted aortic cusps: PLAX, A3C).
* **Image formation.** Reflectivity map → multiplicative Rayleigh speckle blurred to a small
  correlation length → additive noise and near-field clutter by ``image_quality`` → depth
  attenuation → gain and log-like compression → sector mask (black outside).
* **Nuisance** per clip from ``seed``: probe angle (±4°), lateral/axial offset (±0.35 cm), gain
  (±15 %), sector half-angle, speckle. None of it depends on a label.

Everything is vectorised over ``(T, H, W)``; a 32×112×112 clip renders in a few tens of ms.

The module is longer than ~400 lines on purpose: it is one simulator whose parts (geometry,
cardiac cycle, speckle, pathologies) share ``HeartParams`` and the pixel grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

VIEWS = ("A2C", "A3C", "A4C", "PLAX", "PSAX")
QUALITIES = ("Good", "Medium", "Poor")
SEGMENTS = ("septal", "lateral", "anterior", "inferior", "apical")

#: Which akinetic segments each view shows (others are not drawn in that view). A4C shows the
#: inferoseptum and anterolateral wall, so "inferior" maps to its septal and "anterior" to its
#: lateral wall; A3C shows the anteroseptum and inferolateral wall.
VISIBLE_SEGMENTS: dict[str, tuple[str, ...]] = {
    "A4C": ("septal", "lateral", "inferior", "anterior", "apical"),
    "A2C": ("inferior", "anterior", "apical"),
    "A3C": ("septal", "anterior", "lateral", "inferior", "apical"),
    "PLAX": ("septal", "anterior", "lateral", "inferior"),
    "PSAX": ("septal", "lateral", "anterior", "inferior"),
}

# Segment → (screen direction from the LV centre in the anatomical frame, half-width in degrees).
_SEG_DIRS: dict[str, dict[str, tuple[tuple[float, float], float]]] = {
    "A4C": {"septal": ((-1, 0), 55), "inferior": ((-1, 0), 55), "lateral": ((1, 0), 55),
            "anterior": ((1, 0), 55), "apical": ((0, -1), 35)},
    "A2C": {"inferior": ((-1, 0), 55), "anterior": ((1, 0), 55), "apical": ((0, -1), 35)},
    "A3C": {"septal": ((1, 0), 55), "anterior": ((1, 0), 55), "lateral": ((-1, 0), 55),
            "inferior": ((-1, 0), 55), "apical": ((0, -1), 35)},
    "PLAX": {"septal": ((0, -1), 50), "anterior": ((0, -1), 50), "lateral": ((0, 1), 50),
             "inferior": ((0, 1), 50)},
    "PSAX": {"septal": ((-0.95, -0.3), 50), "anterior": ((0, -1), 45), "lateral": ((1, 0), 45),
             "inferior": ((0, 1), 45)},
}

# Reflectivities (0..1) before speckle.
_BLOOD, _TISSUE, _MYO, _WALL, _VALVE, _PERI = 0.035, 0.30, 0.72, 0.58, 0.85, 0.98

# quality → (speckle contrast, additive noise sigma, near-field clutter, blur in px @112, contrast)
_QUALITY = {"Good": (0.75, 0.025, 0.04, 0.7, 1.0),
            "Medium": (0.85, 0.06, 0.12, 0.9, 0.8),
            "Poor": (0.95, 0.11, 0.25, 1.2, 0.6)}


@dataclass(frozen=True)
class HeartParams:
    """Everything that defines one simulated clip's physiology and acquisition."""

    view: str = "A4C"
    ef: float = 60.0                 # %; ESV = EDV * (1 - EF/100)
    edv_ml: float = 120.0
    lvidd_cm: float = 4.8            # LV internal diameter at end-diastole
    ivsd_cm: float = 0.9             # septal thickness at end-diastole
    lvpwd_cm: float = 0.9            # posterior wall thickness at end-diastole
    heart_rate_bpm: float = 70.0
    gain: float = 1.0                # overall brightness multiplier
    image_quality: str = "Good"      # Good | Medium | Poor: speckle/noise/contrast level
    depth_cm: float = 16.0           # imaging depth: pixel spacing = depth_cm / frame height
    asd: bool = False                # interatrial septal gap (visible in A4C)
    pah: bool = False                # dilated right ventricle and atrium, flattened septum
    akinetic_segment: str | None = None  # "septal" | "lateral" | "anterior" | "inferior" | "apical"
    aortic_stenosis: bool = False    # thickened, bright aortic valve, restricted opening (PLAX/A3C)
    phase0: float = 0.0              # cardiac phase (0..1) at frame 0

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"HeartParams.view={self.view!r} not in {VIEWS}")
        if self.image_quality not in QUALITIES:
            raise ValueError(f"HeartParams.image_quality={self.image_quality!r} not in {QUALITIES}")
        if not 0.0 <= self.ef < 100.0:
            raise ValueError(f"HeartParams.ef={self.ef} outside [0, 100)")
        if self.akinetic_segment is not None and self.akinetic_segment not in SEGMENTS:
            raise ValueError(f"HeartParams.akinetic_segment={self.akinetic_segment!r} "
                             f"not in {SEGMENTS}")
        for name in ("edv_ml", "lvidd_cm", "ivsd_cm", "lvpwd_cm", "heart_rate_bpm", "depth_cm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"HeartParams.{name}={getattr(self, name)} must be > 0")

    @property
    def esv_ml(self) -> float:
        """End-systolic volume implied by EDV and EF."""
        return self.edv_ml * (1.0 - self.ef / 100.0)


@dataclass(frozen=True)
class Nuisance:
    """Per-clip acquisition randomness drawn from the seed (independent of every label)."""

    angle_deg: float
    dx_cm: float
    dy_cm: float
    gain: float
    half_angle_deg: float


def draw_nuisance(seed: int) -> Nuisance:
    """The nuisance a clip rendered with ``seed`` uses (first draws of ``default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    a, dx, dy, g, h = rng.uniform(-1.0, 1.0, size=5)
    return Nuisance(angle_deg=float(4.0 * a), dx_cm=float(0.35 * dx), dy_cm=float(0.35 * dy),
                    gain=float(np.exp(0.15 * g)), half_angle_deg=37.0 + 2.0 * h)


# ----------------------------------------------------------------------------- cardiac cycle

def systolic_fraction(heart_rate_bpm: float) -> float:
    """Fraction of the cycle spent in systole: systole lasts ~0.3 s, so it grows with heart rate."""
    return float(np.clip(0.35 + 0.10 * (heart_rate_bpm - 70.0) / 40.0, 0.30, 0.45))


def cardiac_phase(params: HeartParams, t_seconds: np.ndarray) -> np.ndarray:
    """Phase in [0, 1) at each time (0 = end-diastole)."""
    t = np.asarray(t_seconds, dtype=np.float64)
    return np.mod(params.phase0 + t * params.heart_rate_bpm / 60.0, 1.0)


def systolic_progress(params: HeartParams, t_seconds: np.ndarray) -> np.ndarray:
    """0 at ED, 1 at ES: half-cosine down in systole, half-cosine back up in diastole."""
    phi = cardiac_phase(params, t_seconds)
    s = systolic_fraction(params.heart_rate_bpm)
    return np.where(phi < s, 0.5 * (1.0 - np.cos(np.pi * phi / s)),
                    0.5 * (1.0 + np.cos(np.pi * (phi - s) / (1.0 - s))))


def lv_volume_ml(params: HeartParams, t_seconds: np.ndarray) -> np.ndarray:
    """LV cavity volume (ml) at each time: EDV at ED, ESV at ES."""
    return params.edv_ml - (params.edv_ml - params.esv_ml) * systolic_progress(params, t_seconds)


def pixel_spacing_cm(params: HeartParams, height: int) -> float:
    """Isotropic pixel spacing (cm/pixel): the frame height spans ``depth_cm``."""
    return params.depth_cm / float(height)


def _ed_long_axis_cm(params: HeartParams) -> float:
    d = params.lvidd_cm
    length = 6.0 * params.edv_ml / (math.pi * d * d)
    return float(np.clip(length, 1.4 * d, 2.4 * d))


def lv_dimensions(params: HeartParams, t_seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(short-axis diameter D, long-axis length L) in cm at each time (ellipsoid model)."""
    ratio = lv_volume_ml(params, t_seconds) / params.edv_ml
    return params.lvidd_cm * ratio ** 0.4, _ed_long_axis_cm(params) * ratio ** 0.2


def ed_es_frames(params: HeartParams, n_frames: int, fps: float) -> tuple[list[int], list[int]]:
    """Frame indices of every end-diastole and end-systole inside the clip.

    For each ED (ES) instant inside ``[0, (n_frames-1)/fps]`` the frame of the two bracketing
    ones with the larger (smaller) LV volume is returned, in time order.
    """
    if n_frames <= 0:
        return [], []
    f = params.heart_rate_bpm / 60.0
    t_end = (n_frames - 1) / fps
    times = np.arange(n_frames) / fps
    vol = lv_volume_ml(params, times)
    s = systolic_fraction(params.heart_rate_bpm)
    out: list[list[int]] = [[], []]
    for which, offset in ((0, 0.0), (1, s)):
        k0 = math.floor(params.phase0 - offset) - 1
        k = k0
        while True:
            t = (k + offset - params.phase0) / f
            k += 1
            if t < -1e-9:
                continue
            if t > t_end + 1e-9:
                break
            lo = min(int(math.floor(t * fps + 1e-9)), n_frames - 1)
            hi = min(lo + 1, n_frames - 1)
            if which == 0:
                idx = lo if vol[lo] >= vol[hi] else hi
            else:
                idx = lo if vol[lo] <= vol[hi] else hi
            if idx not in out[which]:
                out[which].append(idx)
    return out[0], out[1]


# ----------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class _LVLayout:
    anchor: tuple[float, float]  # apex endocardium (apex mode) or centre (centre mode)
    axis: tuple[float, float]    # unit vector apex → base
    apex_fixed: bool
    w_vpos: float                # ED wall thickness on the +v side (v = rot90(axis))
    w_vneg: float
    w_apex: float
    w_base: float
    base_cut: float | None       # the ring is open beyond u > base_cut * b (mitral opening)


def _unit(deg: float) -> tuple[float, float]:
    r = math.radians(deg)
    return (math.sin(r), math.cos(r))  # 0° = straight down


def _lv_layout(p: HeartParams) -> _LVLayout:
    ivs, pw = p.ivsd_cm, p.lvpwd_cm
    apex_w = 0.75 * min(ivs, pw)
    if p.view == "A4C":
        return _LVLayout((0.6, 1.2 + apex_w), _unit(12.0), True, ivs, pw, apex_w, pw, 0.8)
    if p.view == "A2C":
        return _LVLayout((0.2, 1.2 + apex_w), _unit(-4.0), True, pw, ivs, apex_w, pw, 0.8)
    if p.view == "A3C":
        return _LVLayout((-0.4, 1.2 + apex_w), _unit(3.0), True, pw, ivs, apex_w, pw, 0.8)
    if p.view == "PLAX":
        rv_h = 3.0 if p.pah else 1.9
        cy = 1.1 + 0.45 + rv_h + ivs + p.lvidd_cm / 2.0
        ang = math.radians(-8.0)
        axis = (math.cos(ang), math.sin(ang))  # apex off-screen to the left, base to the right
        return _LVLayout((-2.0, cy), axis, False, pw, ivs, apex_w, pw, 0.72)
    # PSAX, papillary level; axis points down, so +v is the viewer's left (septum)
    cy = min(7.5, 0.62 * p.depth_cm)
    return _LVLayout((0.4, cy), (0.0, 1.0), False, ivs, pw, 0.5 * (ivs + pw), pw, None)


def _rot90(u: tuple[float, float]) -> tuple[float, float]:
    return (-u[1], u[0])


class _Canvas:
    """Anatomical coordinates of every pixel plus painting primitives (all broadcast over T)."""

    def __init__(self, p: HeartParams, height: int, width: int, nz: Nuisance) -> None:
        s = pixel_spacing_cm(p, height)
        self.s = s
        xs = ((np.arange(width, dtype=np.float32) + 0.5) - width / 2.0) * s
        ys = (np.arange(height, dtype=np.float32) + 0.5) * s
        self.xs, self.ys = np.meshgrid(xs, ys)  # screen frame
        c, sn = math.cos(math.radians(nz.angle_deg)), math.sin(math.radians(nz.angle_deg))
        self.rot = (c, sn)
        self.shift = (nz.dx_cm, nz.dy_cm)
        # anatomical = R(-angle) (screen - shift)
        x0, y0 = self.xs - nz.dx_cm, self.ys - nz.dy_cm
        self.X = (c * x0 + sn * y0)[None].astype(np.float32)
        self.Y = (-sn * x0 + c * y0)[None].astype(np.float32)
        self.soft = 0.5 * s

    def to_pixels(self, x: np.ndarray, y: np.ndarray, height: int,
                  width: int) -> tuple[np.ndarray, np.ndarray]:
        """Anatomical cm → (column, row) pixel coordinates (pixel centres at integers)."""
        c, sn = self.rot
        xs = c * x - sn * y + self.shift[0]
        ys = sn * x + c * y + self.shift[1]
        return xs / self.s + width / 2.0 - 0.5, ys / self.s - 0.5

    def ramp(self, d: np.ndarray) -> np.ndarray:
        """Soft inside-mask from a signed distance (negative inside), about one pixel wide."""
        return np.clip(0.5 - d / (2.0 * self.soft), 0.0, 1.0)

    def ellipse(self, cx, cy, a, b, axis: tuple[float, float]) -> np.ndarray:
        """Soft mask of an ellipse: semi-axis ``b`` along ``axis``, ``a`` across it."""
        dx, dy = self.X - cx, self.Y - cy
        u = dx * axis[0] + dy * axis[1]
        v = -dx * axis[1] + dy * axis[0]
        rho = np.sqrt((u / b) ** 2 + (v / a) ** 2)
        r = np.sqrt(u * u + v * v)
        d = (rho - 1.0) * r / np.maximum(rho, 1e-6)
        return self.ramp(np.where(rho < 0.5, -1e3, d))

    def segment(self, x1, y1, x2, y2, half_width) -> np.ndarray:
        """Soft mask of a thick line segment (capsule)."""
        vx, vy = x2 - x1, y2 - y1
        ll = np.maximum(vx * vx + vy * vy, 1e-9)
        h = np.clip(((self.X - x1) * vx + (self.Y - y1) * vy) / ll, 0.0, 1.0)
        d = np.sqrt((self.X - x1 - h * vx) ** 2 + (self.Y - y1 - h * vy) ** 2) - half_width
        return self.ramp(d)


def _paint(img: np.ndarray, mask: np.ndarray, value: float) -> np.ndarray:
    return img + mask * (value - img)


@dataclass
class _LVState:
    """Per-frame LV geometry (arrays of shape (T, 1, 1))."""

    cx: np.ndarray
    cy: np.ndarray
    a: np.ndarray  # semi-axis across (D/2)
    b: np.ndarray  # semi-axis along (L/2)
    wv_pos: np.ndarray
    wv_neg: np.ndarray
    w_apex: np.ndarray
    w_base: np.ndarray


def _lv_state(p: HeartParams, lay: _LVLayout, t: np.ndarray) -> _LVState:
    d, length = lv_dimensions(p, t)
    if p.view == "PSAX":
        length = d
    d = d.astype(np.float32)[:, None, None]
    length = length.astype(np.float32)[:, None, None]
    a, b = d / 2.0, length / 2.0
    thick = (np.float32(p.lvidd_cm) / d) ** 0.5
    if lay.apex_fixed:
        cx = lay.anchor[0] + lay.axis[0] * b
        cy = lay.anchor[1] + lay.axis[1] * b
    else:
        cx = np.full_like(a, lay.anchor[0])
        cy = np.full_like(a, lay.anchor[1])
    return _LVState(cx, cy, a, b, lay.w_vpos * thick, lay.w_vneg * thick, lay.w_apex * thick,
                    lay.w_base * thick)


def _lv_masks(cv: _Canvas, st: _LVState, lay: _LVLayout,
              flatten_vpos: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(cavity, myocardium-outer) soft masks for one LV state."""
    ax = lay.axis
    dx, dy = cv.X - st.cx, cv.Y - st.cy
    u = dx * ax[0] + dy * ax[1]
    v = -dx * ax[1] + dy * ax[0]
    r = np.sqrt(u * u + v * v)

    def sdf(a, b):
        rho = np.sqrt((u / b) ** 2 + (v / a) ** 2)
        d = (rho - 1.0) * r / np.maximum(rho, 1e-6)
        return np.where(rho < 0.5, -1e3, d)

    a_out = st.a + np.where(v > 0, st.wv_pos, st.wv_neg)
    b_out = st.b + np.where(u < 0, st.w_apex, st.w_base)
    d_cav, d_out = sdf(st.a, st.b), sdf(a_out, b_out)
    if flatten_vpos is not None:  # septum pushed flat towards the LV (pressure-loaded RV)
        d_cav = np.maximum(d_cav, v - flatten_vpos * st.a)
        d_out = np.maximum(d_out, v - flatten_vpos * st.a - st.wv_pos)
    cav, out = cv.ramp(d_cav), cv.ramp(d_out)
    if lay.base_cut is not None:
        out = out * cv.ramp(u - lay.base_cut * st.b)
    return cav, out


def _segment_weight(cv: _Canvas, p: HeartParams, st_ed: _LVState) -> np.ndarray | None:
    seg = p.akinetic_segment
    if seg is None or seg not in _SEG_DIRS[p.view]:
        return None
    (sx, sy), half = _SEG_DIRS[p.view][seg]
    n = math.hypot(sx, sy)
    dx, dy = cv.X - st_ed.cx[:1], cv.Y - st_ed.cy[:1]
    cosang = (dx * sx + dy * sy) / (n * np.maximum(np.sqrt(dx * dx + dy * dy), 1e-6))
    return np.clip((cosang - math.cos(math.radians(half))) / 0.12 + 0.5, 0.0, 1.0)


def _draw_lv(cv: _Canvas, img: np.ndarray, p: HeartParams, lay: _LVLayout, t: np.ndarray,
             flatten: float | None) -> tuple[np.ndarray, _LVState]:
    st = _lv_state(p, lay, t)
    cav, out = _lv_masks(cv, st, lay, flatten)
    st_ed = _lv_state(p, lay, np.array([-p.phase0 * 60.0 / p.heart_rate_bpm]))
    m = _segment_weight(cv, p, st_ed)
    if m is not None:  # the akinetic wall keeps its ED position and thickness
        cav_ed, out_ed = _lv_masks(cv, st_ed, lay, flatten)
        cav = m * cav_ed + (1.0 - m) * cav
        out = m * out_ed + (1.0 - m) * out
    img = _paint(img, out, _MYO)
    img = _paint(img, cav, _BLOOD)
    return img, st


def _chamber(cv: _Canvas, img: np.ndarray, cx, cy, a, b, axis, wall: float,
             wall_value: float = _WALL) -> np.ndarray:
    img = _paint(img, cv.ellipse(cx, cy, a + wall, b + wall, axis), wall_value)
    return _paint(img, cv.ellipse(cx, cy, a, b, axis), _BLOOD)


def _valve_opening(p: HeartParams, t: np.ndarray, systolic: bool) -> np.ndarray:
    """0 closed … 1 open; the aortic valve opens in systole, the mitral valve in diastole."""
    phi = cardiac_phase(p, t)
    s = systolic_fraction(p.heart_rate_bpm)
    in_sys = (phi > 0.04) & (phi < s - 0.02)
    in_dia = (phi > s + 0.06) & (phi < 0.97)
    o = in_sys if systolic else in_dia
    return o.astype(np.float32)[:, None, None]


def _leaflets(cv: _Canvas, img: np.ndarray, h1, h2, open_dir, opening, length, half_width,
              value: float, max_open: float = 1.0) -> np.ndarray:
    """Two leaflets hinged at h1/h2 that meet at the midpoint when closed, swing along
    ``open_dir`` when open (``max_open`` < 1 restricts the swing)."""
    mx, my = (h1[0] + h2[0]) / 2.0, (h1[1] + h2[1]) / 2.0
    o = opening * max_open
    for hx, hy in (h1, h2):
        cx_, cy_ = mx - hx, my - hy
        n = np.sqrt(cx_ * cx_ + cy_ * cy_) + 1e-6
        dx = (1 - o) * cx_ / n + o * open_dir[0]
        dy = (1 - o) * cy_ / n + o * open_dir[1]
        dn = np.sqrt(dx * dx + dy * dy) + 1e-6
        lx, ly = np.minimum(length, n) * dx / dn, np.minimum(length, n) * dy / dn
        img = _paint(img, cv.segment(hx, hy, hx + lx, hy + ly, half_width), value)
    return img


def _along(st: _LVState, ax, u, v):
    """Point at local (u, v) of the LV frame (u along the axis, v = rot90(axis))."""
    return (st.cx + u * ax[0] - v * ax[1], st.cy + u * ax[1] + v * ax[0])


def _apical(cv: _Canvas, img: np.ndarray, p: HeartParams, lay: _LVLayout,
            t: np.ndarray) -> np.ndarray:
    ax = lay.axis
    vx = _rot90(ax)
    st = _lv_state(p, lay, t)
    d_ed, l_ed = p.lvidd_cm, _ed_long_axis_cm(p)
    a_ed = d_ed / 2.0
    base_x, base_y = _along(st, ax, st.b, 0.0)  # moves towards the apex in systole
    prog = systolic_progress(p, t).astype(np.float32)[:, None, None]
    la_a, la_b = 0.40 * d_ed, 0.42 * d_ed
    if p.view == "A4C":
        rv_a = (0.54 if p.pah else 0.36) * d_ed
        rv_b = (0.47 if p.pah else 0.40) * l_ed
        rv_w = 0.6 if p.pah else 0.35
        rv_scale = 1.0 - (0.18 if p.pah else 0.28) * prog
        v_sep = a_ed + p.ivsd_cm  # septum's RV surface at ED (+v = viewer's left)
        # RV anchored at its apex; its cavity overlaps the septum so it always meets it
        rv_apex_u = l_ed / 2.0 - 2.0 * rv_b
        ed_cx = lay.anchor[0] + ax[0] * l_ed / 2.0
        ed_cy = lay.anchor[1] + ax[1] * l_ed / 2.0
        rb = rv_b * (1.0 - 0.08 * prog)
        ru = rv_apex_u + rb
        rv_v = v_sep + rv_a * 0.8
        rcx = ed_cx + ru * ax[0] + rv_v * vx[0]
        rcy = ed_cy + ru * ax[1] + rv_v * vx[1]
        ra_a, ra_b = (0.52, 0.55) if p.pah else (0.33, 0.38)
        ra_a, ra_b = ra_a * d_ed, ra_b * d_ed
        crux_v = a_ed + 0.5 * p.ivsd_cm
        gap = 0.28
        la_c = (base_x + la_b * 0.92 * ax[0] + (crux_v - gap - la_a) * vx[0],
                base_y + la_b * 0.92 * ax[1] + (crux_v - gap - la_a) * vx[1])
        ra_c = (base_x + ra_b * 0.92 * ax[0] + (crux_v + gap + ra_a) * vx[0],
                base_y + ra_b * 0.92 * ax[1] + (crux_v + gap + ra_a) * vx[1])
        # interatrial septum: a band from the crux down between the atria
        cx0, cy0 = base_x + crux_v * vx[0], base_y + crux_v * vx[1]
        ias_len = 1.7 * min(la_b, ra_b)
        img = _paint(img, cv.segment(cx0, cy0, cx0 + ias_len * ax[0], cy0 + ias_len * ax[1],
                                     gap + 0.05), _WALL)
        img = _chamber(cv, img, la_c[0], la_c[1], la_a, la_b, ax, 0.22)
        img = _chamber(cv, img, ra_c[0], ra_c[1], ra_a, ra_b, ax, 0.22)
        img = _paint(img, cv.segment(cx0, cy0 + 0.0, cx0 + ias_len * ax[0],
                                     cy0 + ias_len * ax[1], gap), _WALL)
        if p.asd:  # secundum defect: blood crosses the middle of the interatrial septum
            mid = 0.55 * ias_len
            img = _paint(img, cv.ellipse(cx0 + mid * ax[0], cy0 + mid * ax[1], gap + 0.25,
                                         0.65, ax), _BLOOD)
        img = _paint(img, cv.ellipse(rcx, rcy, rv_a * rv_scale + rv_w, rb + rv_w, ax), _MYO * 0.9)
        img = _paint(img, cv.ellipse(rcx, rcy, rv_a * rv_scale, rb, ax), _BLOOD)
    elif p.view == "A2C":
        la_c = (base_x + la_b * 0.92 * ax[0], base_y + la_b * 0.92 * ax[1])
        img = _chamber(cv, img, la_c[0], la_c[1], la_a, la_b, ax, 0.22)
    else:  # A3C: LA under the LV, aortic outflow to the viewer's right
        la_c = (base_x + la_b * 0.92 * ax[0] + 0.25 * a_ed * vx[0],
                base_y + la_b * 0.92 * ax[1] + 0.25 * a_ed * vx[1])
        img = _chamber(cv, img, la_c[0], la_c[1], la_a, la_b, ax, 0.22)
        img = _aorta(cv, img, p, t, start=_along(st, ax, 0.62 * st.b, -0.55 * st.a),
                     direction=(0.64 * ax[0] - 0.77 * vx[0], 0.64 * ax[1] - 0.77 * vx[1]),
                     radius=0.28 * d_ed, length=4.0)
    flatten = 0.78 if (p.pah and p.view == "A4C") else None
    img, st = _draw_lv(cv, img, p, lay, t, flatten)
    # mitral valve at the annulus (u = 0.8 b): closed in systole, open towards the apex
    hw = float(0.6)
    h1 = _along(st, ax, lay.base_cut * st.b, hw * st.a)
    h2 = _along(st, ax, lay.base_cut * st.b, -hw * st.a)
    img = _leaflets(cv, img, h1, h2, (-ax[0], -ax[1]), _valve_opening(p, t, False),
                    0.75 * st.a, 0.07, _VALVE * 0.9)
    return img


def _aorta(cv: _Canvas, img: np.ndarray, p: HeartParams, t: np.ndarray, start, direction,
           radius: float, length: float) -> np.ndarray:
    """Aortic root as a tube from ``start`` along ``direction`` with the valve 0.6 cm in."""
    ex, ey = direction
    nx, ny = -ey, ex
    sx, sy = start
    end = (sx + length * ex, sy + length * ey)
    img = _paint(img, cv.segment(sx, sy, end[0], end[1], radius + 0.28), _WALL + 0.05)
    img = _paint(img, cv.segment(sx, sy, end[0], end[1], radius), _BLOOD)
    vx_, vy_ = sx + 0.6 * ex, sy + 0.6 * ey
    h1 = (vx_ + radius * nx, vy_ + radius * ny)
    h2 = (vx_ - radius * nx, vy_ - radius * ny)
    thick, value, swing = (0.25, 1.0, 0.25) if p.aortic_stenosis else (0.06, _VALVE, 1.0)
    return _leaflets(cv, img, h1, h2, direction, _valve_opening(p, t, True), 1.05 * radius,
                     thick, value, max_open=swing)


def _plax(cv: _Canvas, img: np.ndarray, p: HeartParams, lay: _LVLayout,
          t: np.ndarray) -> np.ndarray:
    ax = lay.axis
    vx = _rot90(ax)  # points down (posterior)
    st = _lv_state(p, lay, t)
    a_ed = p.lvidd_cm / 2.0
    cx, cy = lay.anchor
    rv_h = 3.0 if p.pah else 1.9
    # RV: a band above the septum (its cavity reaches into the septum so it always meets it)
    v_rv = -(a_ed + p.ivsd_cm + rv_h / 2.0) + 0.3
    rcx, rcy = cx + v_rv * vx[0], cy + v_rv * vx[1]
    img = _paint(img, cv.ellipse(rcx, rcy, rv_h / 2.0 + 0.3 + 0.45, 5.5, ax), _MYO * 0.85)
    img = _paint(img, cv.ellipse(rcx, rcy, rv_h / 2.0 + 0.3, 5.0, ax), _BLOOD)
    # aortic root continues the septum to the right; LA sits behind it
    r_ao = 0.26 * p.lvidd_cm + 0.1
    ang = math.atan2(ax[1], ax[0]) - math.radians(6.0)
    d_ao = (math.cos(ang), math.sin(ang))
    start = (cx + 0.55 * 2.0 * a_ed * ax[0] * 1.6 - (a_ed - r_ao - 0.1) * vx[0],
             cy + 0.55 * 2.0 * a_ed * ax[1] * 1.6 - (a_ed - r_ao - 0.1) * vx[1])
    la_r = 0.40 * p.lvidd_cm
    n_ao = (-d_ao[1], d_ao[0])
    la_c = (start[0] + 2.4 * d_ao[0] + (r_ao + 0.5 + la_r) * n_ao[0],
            start[1] + 2.4 * d_ao[1] + (r_ao + 0.5 + la_r) * n_ao[1])
    img = _chamber(cv, img, la_c[0], la_c[1], la_r, la_r * 1.05, d_ao, 0.25)
    img = _aorta(cv, img, p, t, start=start, direction=d_ao, radius=r_ao, length=6.0)
    img, st = _draw_lv(cv, img, p, lay, t, None)
    # pericardium: bright line behind the posterior wall, moving with it
    pv = st.a + st.wv_pos + 0.2
    p1 = _along(st, ax, -0.9 * st.b, pv)
    p2 = _along(st, ax, 0.55 * st.b, pv)
    img = _paint(img, cv.segment(p1[0], p1[1], p2[0], p2[1], 0.12), _PERI)
    # mitral valve: anterior leaflet hinged on the aortic root, posterior on the annulus
    h1 = (start[0] + r_ao * n_ao[0], start[1] + r_ao * n_ao[1])
    h2 = _along(st, ax, lay.base_cut * st.b, 0.75 * st.a)
    img = _leaflets(cv, img, h1, h2, (-ax[0], -ax[1]), _valve_opening(p, t, False),
                    0.55 * p.lvidd_cm, 0.07, _VALVE * 0.9)
    return img


def _psax(cv: _Canvas, img: np.ndarray, p: HeartParams, lay: _LVLayout,
          t: np.ndarray) -> np.ndarray:
    a_ed = p.lvidd_cm / 2.0
    cx, cy = lay.anchor
    prog = systolic_progress(p, t).astype(np.float32)[:, None, None]
    # RV crescent wrapping the septum (anterior-left); the LV painted over it leaves the crescent
    k = 1.55 if p.pah else 1.0
    rv_dir = (-0.82, -0.57)
    off = a_ed * (0.95 if p.pah else 0.85) + p.ivsd_cm * 0.5
    rcx, rcy = cx + off * rv_dir[0], cy + off * rv_dir[1]
    rv_axis = (-rv_dir[1], rv_dir[0])
    ra, rb = 0.62 * a_ed * k, 1.55 * a_ed * k * (1.0 - 0.06 * prog)
    img = _paint(img, cv.ellipse(rcx, rcy, ra + 0.4, rb + 0.4, rv_axis), _MYO * 0.85)
    img = _paint(img, cv.ellipse(rcx, rcy, ra * (1.0 - 0.2 * prog), rb, rv_axis), _BLOOD)
    flatten = 0.55 if p.pah else None
    img, st = _draw_lv(cv, img, p, lay, t, flatten)
    # papillary muscles (scale with the cavity)
    for ang in (50.0, -40.0):
        r = math.radians(ang)
        px = st.cx + 0.58 * st.a * math.sin(r)
        py = st.cy + 0.58 * st.a * math.cos(r)
        img = _paint(img, cv.ellipse(px, py, 0.22 * st.a, 0.22 * st.a, (0.0, 1.0)), _MYO * 0.9)
    # pericardium behind the inferior wall
    pv = st.b + st.w_base + 0.2
    img = _paint(img, cv.segment(st.cx - 0.8 * st.a, st.cy + pv, st.cx + 0.8 * st.a,
                                 st.cy + pv, 0.12), _PERI)
    return img


def _reflectivity(p: HeartParams, cv: _Canvas, t: np.ndarray) -> np.ndarray:
    lay = _lv_layout(p)
    img = np.full((len(t),) + cv.X.shape[1:], _TISSUE, dtype=np.float32)
    if p.view in ("A4C", "A2C", "A3C"):
        return _apical(cv, img, p, lay, t)
    if p.view == "PLAX":
        return _plax(cv, img, p, lay, t)
    return _psax(cv, img, p, lay, t)


def render_clip(params: HeartParams, n_frames: int, fps: float, height: int, width: int,
                seed: int) -> np.ndarray:
    """Render a clip: ``uint8 (T, H, W)`` grayscale, deterministic for a given ``seed``.

    Frame ``i`` shows the heart at ``t = i / fps``; see the module docstring for the model.
    """
    if n_frames <= 0 or height <= 0 or width <= 0 or fps <= 0:
        raise ValueError(f"render_clip: need n_frames, height, width, fps > 0, got "
                         f"{n_frames}, {height}, {width}, {fps}")
    nz = draw_nuisance(seed)
    rng = np.random.default_rng([seed, 1])
    cv = _Canvas(params, height, width, nz)
    t = np.arange(n_frames, dtype=np.float64) / fps
    refl = _reflectivity(params, cv, t)
    spk_c, noise, clutter, blur, contrast = _QUALITY[params.image_quality]
    # contrast loss: poor windows pull every reflector towards the mean
    refl = _TISSUE + contrast * (refl - _TISSUE)

    # Rayleigh amplitude speckle (mean 1), spatially correlated by a small blur
    u = rng.random((n_frames, height, width), dtype=np.float32)
    spk = np.sqrt(-np.log(np.maximum(u, 1e-7))) / np.float32(0.8862)
    sigma = blur * height / 112.0
    # frames as channels; OpenCV filters at most 128 channels per call
    hwt = np.ascontiguousarray(spk.transpose(1, 2, 0))
    spk = np.concatenate([cv2.GaussianBlur(hwt[:, :, i:i + 128], (0, 0), sigma)
                          .reshape(height, width, -1) for i in range(0, n_frames, 128)], axis=2)
    spk = spk.transpose(2, 0, 1)
    spk = 1.0 + 1.6 * spk_c * (spk - 1.0)  # restore the contrast the blur removed
    img = refl * np.maximum(spk, 0.0)

    # near-field clutter (reverberation) and electronic noise
    r = np.sqrt(cv.xs ** 2 + cv.ys ** 2)[None]
    img = img + clutter * np.exp(-r / 2.0) * rng.random((n_frames, 1, 1), dtype=np.float32)
    img = img + noise * rng.standard_normal((n_frames, height, width), dtype=np.float32)
    img = img * np.exp(-0.045 * r)  # attenuation only partly compensated by the TGC
    img = np.clip(img * params.gain * nz.gain, 0.0, None)
    img = np.clip(1.15 * img ** 0.75, 0.0, 1.0)

    # sector mask: fan from the top centre, black outside, soft edge
    theta = np.degrees(np.arctan2(np.abs(cv.xs), cv.ys))
    edge = np.clip((nz.half_angle_deg - theta) / 1.0, 0.0, 1.0)
    edge = edge * np.clip((params.depth_cm - r[0]) / (2 * cv.s), 0.0, 1.0)
    return np.round(img * edge[None] * 255.0).astype(np.uint8)


# ----------------------------------------------------------------------------- annotations

def lv_tracing_lines(params: HeartParams, t_seconds: float, height: int, width: int,
                     seed: int, n_chords: int = 20) -> np.ndarray:
    """EchoNet-style LV tracing at one instant: ``(1 + n_chords, 4)`` rows of ``X1, Y1, X2, Y2``.

    Row 0 is the long axis (apex → mitral annulus midpoint); the others are chords perpendicular to
    it, spanning the cavity, in pixel coordinates of the rendered frame (apical views only; the
    cavity is traced as drawn without an akinetic segment).
    """
    if params.view not in ("A2C", "A3C", "A4C"):
        raise ValueError(f"lv_tracing_lines: apical views only, got {params.view}")
    lay = _lv_layout(params)
    st = _lv_state(params, lay, np.array([t_seconds], dtype=np.float64))
    cv = _Canvas(params, height, width, draw_nuisance(seed))
    ax = lay.axis
    a, b = float(st.a.ravel()[0]), float(st.b.ravel()[0])
    cut = lay.base_cut if lay.base_cut is not None else 1.0
    us = np.linspace(-b, cut * b, n_chords + 2)[1:-1]
    half = a * np.sqrt(np.clip(1.0 - (us / b) ** 2, 0.0, None))
    rows = [(-b, 0.0, cut * b, 0.0)] + [(u, h, u, -h) for u, h in zip(us, half)]
    loc = np.array(rows, dtype=np.float64)
    out = np.empty_like(loc)
    for k in (0, 2):
        x, y = _along(st, ax, loc[:, k], loc[:, k + 1])
        px, py = cv.to_pixels(np.asarray(x).ravel(), np.asarray(y).ravel(), height, width)
        out[:, k], out[:, k + 1] = px, py
    return out


def plax_calipers(params: HeartParams, height: int, width: int,
                  seed: int) -> dict[str, tuple[float, float, float, float]]:
    """End-diastolic PLAX calipers ``{"IVSd"|"LVIDd"|"LVPWd": (X1, Y1, X2, Y2)}`` in pixels.

    Each runs across the LV at its centre, perpendicular to the long axis, from the outer to the
    inner edge of the septum, across the cavity, and from the inner to the outer posterior wall;
    their lengths times :func:`pixel_spacing_cm` equal ``ivsd_cm``, ``lvidd_cm``, ``lvpwd_cm``.
    """
    if params.view != "PLAX":
        raise ValueError(f"plax_calipers: PLAX only, got {params.view}")
    lay = _lv_layout(params)
    cv = _Canvas(params, height, width, draw_nuisance(seed))
    a = params.lvidd_cm / 2.0
    vx = _rot90(lay.axis)
    cx, cy = lay.anchor
    stops = {"IVSd": (-(a + params.ivsd_cm), -a), "LVIDd": (-a, a),
             "LVPWd": (a, a + params.lvpwd_cm)}
    out: dict[str, tuple[float, float, float, float]] = {}
    for name, (v1, v2) in stops.items():
        xs = np.array([cx + v1 * vx[0], cx + v2 * vx[0]])
        ys = np.array([cy + v1 * vx[1], cy + v2 * vx[1]])
        px, py = cv.to_pixels(xs, ys, height, width)
        out[name] = (float(px[0]), float(py[0]), float(px[1]), float(py[1]))
    return out
