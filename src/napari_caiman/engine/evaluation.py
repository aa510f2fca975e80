"""Component evaluation: SNR by event exceptionality, spatial r-values, thresholds.

The tests follow CaImAn's component evaluation (Giovannucci et al., eLife
2019, "Automated component evaluation"); the code is our own.

SNR (``SNR_comp``)
    On the raw trace ``F = C + YrA`` of each component, after removing a slow
    baseline (running 8th percentile over ``min(T // 5, 800)`` frames, on a
    decimated grid): the noise model is a Gaussian centred on the trace's
    mode (half-sample mode) with the SD ``sd`` estimated from the samples
    below the mode only (``sqrt(mean((F - mode)^2))`` over them), since
    calcium transients are positive.  Each sample gets
    ``log P(z' >= (F - mode) / (3 sd))``; the least probable run of ``N``
    consecutive samples (``N = ceil(fr * decay_time)``, the length of a
    transient) gives ``fitness = min_t sum_{t..t+N-1} log P``, and
    ``SNR = -Phi^-1(exp(fitness / N))``, exactly CaImAn's definition and scale
    (so ``min_SNR = 2.5`` means what it means there).

r-value (``r_values``)
    Spatial consistency: the Pearson correlation, over the component's
    support (pixels where ``a > 0``), between its footprint and the movie
    averaged over the frames where the component is active: the intervals
    ``[-3, +10)`` frames around its ``Npeaks = 5`` largest local maxima of
    ``C`` (above 30 % of its range), as in CaImAn.  Two differences, both
    switchable: (1) the background ``b f`` averaged over the same frames is
    subtracted first (``subtract_background=True``): a textured neuropil
    background otherwise dilutes the correlation of real neurons; (2)
    overlapping components (``overlap="dominant+subtract"``): of the active
    frames only those where the component dominates its neighbours (its
    trace >= the neighbours' traces projected on its footprint) are kept,
    and the neighbours' mean contribution ``a_j * mean(c_j)`` over them is
    subtracted.  CaImAn instead drops every frame where any overlapping
    component is active (``overlap="exclude"``), which throws away most of a
    neuron's frames when a noisy neighbour "fires" often.  On synthetic
    ground truth (CNMF output + injected noise components) the default gives
    true neurons r >= 0.94, noise components r <= 0.4, and 0.79 for a partial
    (split) component of a real neuron; CaImAn's rule gives true neurons
    down to r ~0.4-0.7 (noise <= 0.44, partial 0.22); "subtract" alone
    rates the partial 0.84 (accepted).  The movie is read in chunks of
    frames; only frames that some component needs are read, and only the
    support pixels of each component are touched, so memory stays at one
    chunk plus a few arrays of ``nnz(A)``.

Shape (``solidity``, ``n_pieces``, ``area_ratio``, ``elongation``; :mod:`.shapes`)
    Computed once with SNR and r-values from the footprints (cut at 20 % of
    their maxima): solidity (area / convex-hull area), connected pieces
    holding >= 10 % of the pixels, area relative to a disc of radius
    ``2 gSig`` (the expected soma) and the ratio of the principal axes (in
    units of gSig).  Thin fragments over the neuropil, nets, sprawling
    footprints and streaks (dendrites, vessel walls, the dark edge of the
    field of view) are the junk CNMF finds on real two-photon data; the
    shape thresholds (our own parameter group ``napari_caiman``:
    ``min_solidity`` 0.6, ``max_pieces`` 1, ``min_area_ratio`` 0.095,
    ``max_area_ratio`` 4, ``max_elongation`` 2.5) reject them whatever their SNR.  Where the
    area floor is a few pixels (below ``small_floor_px``, 10: gSig up to ~3 px at 0.095) a
    footprint one pixel short of it passes: there one pixel is over a tenth of the floor, finer
    than a 20 % cut can measure (the 2 x 2-pixel somata of a downsampled movie at gSig 2 have 4
    pixels against a floor of 4.8).  The allowance needs at least :data:`MIN_BLOB_PX` (4: a
    2 x 2 block, the smallest footprint that is a blob along both axes): a 3-pixel footprint is a
    speck or a line at any floor (the Neurofinder crop binned 3x, floor 3.3 px: six unmatched
    3-pixel components passed the allowance, ``bench/results/realdata_robustness.md``).
    Components seeded
    from anatomy (``estimates.from_anatomy``) are judged by shape only when
    ``accept_anatomy`` is set: a silent cell has no SNR.

Duplicates (``dup_score``, ``dup_of``; :mod:`.duplicates`)
    A weak fragment inside a stronger component's footprint that carries a
    noisy copy of its activity has a high r-value for the same reason as the
    cell.  Its score is ``min(overlap, trace correlation)`` with the stronger
    component it lies in; above ``max_duplicate`` (0.5, our parameter group)
    it is rejected when that component is accepted (CaImAn's
    ``remove_duplicates`` drops spatial subsets; this one also asks for the
    same activity, so overlapping neighbours stay).

Not implemented (CaImAn's optional tests): footprint size/eccentricity tests
(``gSig_range``, ``use_ecc``/``max_ecc``); :func:`apply_thresholds` has plain
``min_size``/``max_size`` limits instead.

CNN
    There is no CNN classifier on the native path: ``Metrics.cnn_preds`` is
    None and ``cnn_available`` False; with ``use_cnn=True`` the evaluation logs
    a warning and the thresholds ignore the CNN terms.  A CaImAn backend can
    fill ``cnn_preds`` later.

Thresholds (:func:`apply_thresholds`, CaImAn's disjunctive rule)
    accepted = (SNR >= min_SNR or r >= rval_thr [or cnn >= min_cnn_thr]
                [or (SNR >= joint_SNR_frac * min_SNR and r >= joint_rval_frac * rval_thr)])
               and (SNR > SNR_lowest [or (r >= high_rval_thr and SNR > 0)]) and r > rval_lowest
               [and cnn > cnn_lowest]
               [and min_size <= size <= max_size]
               [and solidity >= min_solidity and n_pieces <= max_pieces
                and min_area_ratio <= area_ratio
                    [or area_px + 1 >= floor_px < small_floor_px and area_px >= 4]
                and area_ratio <= max_area_ratio
                and elongation <= max_elongation]
               [and not (dup_score > max_duplicate, its stronger partner accepted)]
    The joint test (our group; 0.625 and 0.875 by default, None = off) accepts
    a component on which both tests pass at looser levels: on short
    recordings (300 frames of the Neurofinder crop) real cells with a single
    transient reach SNR 1.3-1.7 and r 0.70-0.79 (with ``min_SNR`` 2, ``rval_thr``
    0.8) and fail each test alone; two independent weaker tests together are
    about as strict as one at the full level.  As fractions of ``min_SNR`` and
    ``rval_thr``, they follow those thresholds (the sliders).
    The high r-value exemption (our group; ``high_rval_thr`` 0.9, None = off):
    CaImAn's hard floor ``SNR_lowest`` (0.5) does not apply to a component
    whose r-value reaches ``high_rval_thr`` (its SNR must still be > 0 and it
    must pass the tests above, here the r-value test): the movie shows the
    footprint's shape clearly in the component's own frames, but its
    transients are faint.  On 300-frame pieces of the Neurofinder crop such
    components (SNR 0.3-0.4, r 0.88-0.95) are annotated somata; injected
    noise components have r <= 0.4.  Like the joint test it is ignored on
    metrics without shape (CaImAn files keep CaImAn's rule).
    Components from anatomical seeds (``anatomy`` mask) with a good shape are
    accepted whatever their SNR / r-value when ``accept_anatomy`` is True.
    NaN metrics fail every test.  The function is pure and takes well under a
    millisecond for thousands of components, so sliders can call it on every
    move without recomputing the metrics.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
from scipy import sparse, special

from .dff import half_sample_mode, running_percentile
from .errors import InputError
from .progress import Progress, run
from .resolve import thresholds as thresholds_from_params  # the rule lives in resolve; the old name
from .threads import single_threaded_blas

__all__ = [
    "Metrics",
    "iter_compute_metrics",
    "compute_metrics",
    "apply_thresholds",
    "thresholds_from_params",
    "iter_evaluate_components",
    "evaluate_components",
    "event_exceptionality",
    "find_active_frames",
]

log = logging.getLogger(__name__)

#: The joint activity test (our group): SNR >= joint_SNR_frac x min_SNR and r >= joint_rval_frac x rval_thr.
JOINT_SNR_FRAC, JOINT_RVAL_FRAC = 0.625, 0.875
#: From this r-value on, CaImAn's SNR_lowest floor does not apply (our group; the SNR must be > 0).
HIGH_RVAL_THR = 0.9
#: An area floor (min_area_ratio discs) below this many pixels lets a footprint one pixel short pass.
SMALL_FLOOR_PX = 10.0
#: The allowance of the area floor needs at least this many pixels (a 2 x 2 block).
MIN_BLOB_PX = 4


@dataclass
class Metrics:
    """Per-component quality metrics (computed once, thresholded many times).

    Attributes
    ----------
    SNR_comp : (K,) float
        Event-exceptionality SNR (CaImAn's ``SNR_comp``).
    r_values : (K,) float
        Spatial consistency (CaImAn's ``r_values``).
    size : (K,) int
        Pixels (voxels) in each footprint's support.
    cnn_preds : (K,) float or None
        CNN classifier output; None on the native path.
    cnn_available : bool
        Whether ``cnn_preds`` holds real predictions.
    fitness : (K,) float
        Minimum log-probability of ``n_samples`` consecutive samples.
    noise_sd, mode : (K,) float
        Noise SD (from the samples below the mode) and mode of each detrended raw trace.
    n_frames_used : (K,) int
        Frames averaged for each r-value (0: no activity found, r = 0).
    n_samples : int
        ``N`` of the SNR test.
    solidity, n_pieces, area_ratio, elongation, area_px : (K,) or None
        Shape of each footprint (see :mod:`.shapes`); None when not computed
        (e.g. a CaImAn file).
    anatomy : (K,) bool or None
        Components that came from anatomical seeds.
    classifier_prob : (K,) or None
        Probability of being a cell from a classifier learnt from curation
        (:mod:`.classifier`), when one was applied.
    dup_score, dup_of : (K,) float / int or None
        Duplicate score of each component and the stronger component it
        duplicates (-1: none; :mod:`.duplicates`).
    timings : dict
        Seconds per stage.
    """

    SNR_comp: np.ndarray
    r_values: np.ndarray
    size: np.ndarray
    cnn_preds: np.ndarray | None = None
    cnn_available: bool = False
    fitness: np.ndarray | None = None
    noise_sd: np.ndarray | None = None
    mode: np.ndarray | None = None
    n_frames_used: np.ndarray | None = None
    n_samples: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    solidity: np.ndarray | None = None
    n_pieces: np.ndarray | None = None
    area_ratio: np.ndarray | None = None
    anatomy: np.ndarray | None = None
    classifier_prob: np.ndarray | None = None
    dup_score: np.ndarray | None = None
    dup_of: np.ndarray | None = None
    elongation: np.ndarray | None = None
    area_px: np.ndarray | None = None

    @property
    def n_components(self) -> int:
        """Return the number of components measured."""
        return int(np.asarray(self.SNR_comp).shape[0])

    def to_dict(self) -> dict[str, Any]:
        """CaImAn's ``estimates`` names for saving (``SNR_comp``, ``r_values``, ``cnn_preds``)."""
        out = {
            "SNR_comp": np.asarray(self.SNR_comp),
            "r_values": np.asarray(self.r_values),
            "cnn_preds": None if self.cnn_preds is None else np.asarray(self.cnn_preds),
        }
        for (
            name
        ) in SHAPE_FIELDS:  # extra estimates fields: CaImAn's load_CNMF sets them as attributes
            v = getattr(self, name)
            if v is not None:
                out[name] = np.asarray(v)
        return out

    @classmethod
    def from_saved(cls, values: dict[str, Any], estimates: Any = None) -> Metrics | None:
        """Rebuild metrics from saved ``SNR_comp``/``r_values``/``cnn_preds``.

        E.g. the ``extra`` dict of a loaded results file, so that a reloaded result can be
        re-thresholded without recomputing. Sizes come from ``estimates.A`` when given. Returns None
        when ``SNR_comp`` or ``r_values`` is missing.
        """
        snr, r = values.get("SNR_comp"), values.get("r_values")
        if snr is None or r is None:
            return None
        snr = np.asarray(snr, dtype=np.float64).ravel()
        r = np.asarray(r, dtype=np.float64).ravel()
        if snr.shape != r.shape:
            raise InputError("r_values", f"has {r.size} values, SNR_comp {snr.size}")
        if estimates is not None:
            A = sparse.csc_matrix(estimates.A)
            if A.shape[1] != snr.size:
                raise InputError("SNR_comp", f"has {snr.size} values for {A.shape[1]} components")
            size = np.diff(sparse.csc_matrix(A > 0).indptr).astype(np.int64)
        else:
            size = np.zeros(snr.size, np.int64)
        cnn = values.get("cnn_preds")
        cnn = (
            None
            if cnn is None or np.size(cnn) != snr.size
            else np.asarray(cnn, dtype=np.float64).ravel()
        )
        shape = {}
        for name in SHAPE_FIELDS:
            v = values.get(name)
            shape[name] = None if v is None or np.size(v) != snr.size else np.asarray(v).ravel()
        if shape["anatomy"] is not None:
            shape["anatomy"] = shape["anatomy"].astype(bool)
        if shape["dup_of"] is not None:
            shape["dup_of"] = shape["dup_of"].astype(np.int64)
        if shape["area_px"] is None and shape["area_ratio"] is not None and estimates is not None:
            # a file saved before area_px: the same pixel counts from the footprints
            from .shapes import cut_areas

            shape["area_px"] = cut_areas(estimates.A, tuple(estimates.dims))
        return cls(
            SNR_comp=snr,
            r_values=r,
            size=size,
            cnn_preds=cnn,
            cnn_available=cnn is not None,
            **shape,  # type: ignore[arg-type]
        )

    def subset(self, idx: Any) -> Metrics:
        """Metrics of the components ``idx`` only (e.g. after removing components)."""

        def sel(v):
            return None if v is None else np.asarray(v)[idx]

        fields = {name: sel(getattr(self, name)) for name in SHAPE_FIELDS}
        if self.dup_of is not None:  # partner indices into the subset (-1: not in it)
            new = np.full(self.n_components, -1, np.int64)
            kept = np.arange(self.n_components)[idx]
            new[kept] = np.arange(kept.size)
            of = fields["dup_of"]
            fields["dup_of"] = np.where(of >= 0, new[np.maximum(of, 0)], -1)
        return Metrics(
            sel(self.SNR_comp),
            sel(self.r_values),
            sel(self.size),
            sel(self.cnn_preds),
            self.cnn_available,
            sel(self.fitness),
            sel(self.noise_sd),
            sel(self.mode),
            sel(self.n_frames_used),
            self.n_samples,
            dict(self.timings),
            **fields,
        )


#: Shape fields of :class:`Metrics` saved with the estimates.
SHAPE_FIELDS = (
    "solidity",
    "n_pieces",
    "area_ratio",
    "anatomy",
    "classifier_prob",
    "dup_score",
    "dup_of",
    "elongation",
    "area_px",
)

# ----------------------------------------------------------------------------- SNR


#: The use_cnn warning was given in this process.
_CNN_WARNED = False


def _check_traces(x: np.ndarray, what: str) -> None:
    if not np.isfinite(x).all():
        bad = np.where(~np.isfinite(x).all(axis=1))[0]
        raise InputError(
            "estimates",
            f"{what} contain NaN or inf (components {bad[:10].tolist()}"
            f"{' ...' if bad.size > 10 else ''})",
        )


def event_exceptionality(
    traces: np.ndarray, N: int = 5, *, remove_baseline: bool = True, sigma_factor: float = 3.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Event-exceptionality test of raw traces (K, T), vectorized over components.

    Returns ``(SNR, fitness, noise_sd, mode)``; see the module docstring.
    """
    F = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    K, T = F.shape
    if K == 0:
        z = np.zeros(0)
        return z, z.copy(), z.copy(), z.copy()
    if remove_baseline and T >= 10:
        window = int(min(max(T // 5, 1), 800))
        F = F - running_percentile(F, 8.0, window, fast=True)
    md = half_sample_mode(F)
    dev = F - md[:, None]
    neg = np.minimum(dev, 0.0)
    n_neg = np.maximum((neg < 0).sum(axis=1), 1)
    sd = np.sqrt((neg**2).sum(axis=1) / n_neg)
    flat = sd <= 0
    sd_safe = np.where(flat, 1.0, sd)
    z = dev / (sigma_factor * sd_safe[:, None])
    logp = special.log_ndtr(-z)  # log P(Z >= z), stable in the far tail
    N = int(max(1, min(N, T)))
    cs = np.cumsum(logp, axis=1)
    win = cs[:, N - 1 :].copy()
    win[:, 1:] -= cs[:, :-N]
    fitness = win.min(axis=1)
    snr = -special.ndtri_exp(np.minimum(fitness / N, 0.0))
    snr[flat] = 0.0
    fitness[flat] = 0.0
    return snr, fitness, sd, md


# ----------------------------------------------------------------------------- r-values


def find_active_frames(
    C: np.ndarray, *, Npeaks: int = 5, tB: int = -3, tA: int = 10, thres: float = 0.3
) -> sparse.csr_matrix:
    """(K, T) sparse 0/1 matrix of frames around each trace's largest peaks.

    Peaks are local maxima (plateaus count once; the first and last frames
    count when the trace falls after / rises before them) above
    ``min + thres * (max - min)``;
    the ``Npeaks`` highest give intervals ``[peak + tB, peak + tA)`` clipped to the movie.
    """
    C = np.atleast_2d(np.asarray(C, dtype=np.float64))
    K, T = C.shape
    if K == 0 or T < 3:
        return sparse.csr_matrix((K, T), dtype=np.float32)
    lo, hi = C.min(axis=1), C.max(axis=1)
    thr = lo + thres * (hi - lo)
    d = np.diff(C, axis=1)
    # a peak is a rise followed (after any flat run: a plateau counts once, at
    # its first sample) by a fall
    sgn = np.sign(d)
    n_d = T - 1
    pos = np.where(sgn != 0, np.arange(n_d)[None, :], n_d)
    nxt = np.minimum.accumulate(pos[:, ::-1], axis=1)[:, ::-1]  # next non-flat slope at or after t
    next_sign = np.where(nxt < n_d, np.take_along_axis(sgn, np.minimum(nxt, n_d - 1), axis=1), 0)
    peak = np.zeros_like(C, dtype=bool)
    peak[:, 1:-1] = (sgn[:, :-1] > 0) & (next_sign[:, 1:] < 0)
    # maxima at the ends of the movie count too (a transient cut by the start or the end)
    peak[:, 0] = sgn[:, 0] < 0
    peak[:, -1] = sgn[:, -1] > 0
    peak &= C > thr[:, None]
    peak &= (hi > lo)[:, None]
    score = np.where(peak, C, -np.inf)
    n = min(Npeaks, T)
    top = np.argpartition(-score, n - 1, axis=1)[:, :n] if n < T else np.tile(np.arange(T), (K, 1))
    ok = np.isfinite(np.take_along_axis(score, top, axis=1))
    rows = np.repeat(np.arange(K), n)[ok.ravel()]
    pk = top.ravel()[ok.ravel()]
    offs = np.arange(tB, tA)
    rr = np.repeat(rows, offs.size)
    tt = np.clip((pk[:, None] + offs[None, :]).ravel(), 0, T - 1)
    M = sparse.csr_matrix((np.ones(rr.size, np.float32), (rr, tt)), shape=(K, T))
    M.data[:] = 1.0  # duplicates summed -> back to 0/1
    return M


def _own_frames(A: sparse.csc_matrix, L: sparse.csr_matrix, Athresh: float) -> sparse.csr_matrix:
    """Active frames of each component minus those of overlapping components."""
    nA = np.sqrt(np.asarray(A.multiply(A).sum(axis=0)).ravel())
    nA[nA == 0] = 1
    An = A @ sparse.diags(1.0 / nA)
    ov = (An.T @ An).tocsr()
    ov.setdiag(0)
    ov.eliminate_zeros()
    ov.data = (ov.data > Athresh).astype(np.float32)
    ov.eliminate_zeros()
    if ov.nnz == 0:
        return L
    busy = (ov @ L).tocsr()
    busy.data[:] = 1.0
    own = (L - L.multiply(busy)).tocsr()
    own.eliminate_zeros()
    # components left with nothing keep all their frames (CaImAn does the same)
    empty = np.diff(own.indptr) == 0
    has = np.diff(L.indptr) > 0
    if np.any(empty & has):
        own = (own + sparse.diags((empty & has).astype(np.float32)) @ L).tocsr()
    return own.tocsr()


def _dominant_frames(
    A: sparse.csc_matrix, L: sparse.csr_matrix, C: np.ndarray
) -> sparse.csr_matrix:
    """Active frames of each component where it dominates its overlapping neighbours.

    Frame t of component k is kept when ``c_k(t) >= sum_j G_kj c_j(t)`` with
    ``G_kj = a_k.a_j / a_k.a_k`` (the neighbours' activity projected on
    ``a_k``, in k's trace units); components left with no frame keep all.
    """
    G = (A.T @ A).tocsr()
    d = G.diagonal().copy()
    d[d == 0] = 1
    G.setdiag(0)
    G.eliminate_zeros()
    if G.nnz == 0:
        return L
    G = sparse.diags(1.0 / d) @ G
    C = np.asarray(C, dtype=np.float64)
    Lc = L.tocoo()
    k, t = Lc.row, Lc.col
    # sum_j G[k, j] C[j, t] for every (k, t) entry of L, vectorized over entries
    Gr = G.tocsr()
    m = np.diff(Gr.indptr)[k]
    rep = np.repeat(np.arange(k.size), m)
    offs = np.arange(rep.size) - np.repeat(np.cumsum(m) - m, m)
    q = Gr.indptr[k][rep] + offs
    others = np.bincount(rep, weights=Gr.data[q] * C[Gr.indices[q], t[rep]], minlength=k.size)
    keep = C[k, t] >= others
    own = sparse.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (k[keep], t[keep])), shape=L.shape
    )
    empty = (np.diff(own.indptr) == 0) & (np.diff(L.indptr) > 0)
    if empty.any():
        own = (own + sparse.diags(empty.astype(np.float32)) @ L).tocsr()
    return own


def _overlap_contributions(
    A: sparse.csc_matrix, frames: sparse.csr_matrix, n_used: np.ndarray, C: np.ndarray
) -> np.ndarray:
    """Contribution of the overlapping components to each component's frame average.

    For every entry ``(pixel r, component k)`` of ``A`` (aligned with
    ``A.data``; ``A`` csc with sorted indices): ``sum_{j != k} A[r, j] *
    mean_{t in frames_k} C[j, t]``.  Fully vectorized: the pair means
    ``M[k, j]`` are computed only for overlapping pairs, and each entry looks
    up the components present at its pixel.
    """
    K = A.shape[1]
    out = np.zeros(A.nnz)
    pattern = A.copy()
    pattern.data[:] = 1.0
    ov = (pattern.T @ pattern).tocsr()
    ov.setdiag(0)
    ov.eliminate_zeros()
    ov.sort_indices()
    if ov.nnz == 0:
        return out
    C = np.asarray(C)
    kp = np.repeat(np.arange(K), np.diff(ov.indptr))
    jp = ov.indices.astype(np.int64)
    # M[k, j]: mean of C_j over the frames of k, for overlapping pairs
    nk = np.diff(frames.indptr)[kp]
    rep = np.repeat(np.arange(kp.size), nk)
    offs = np.arange(rep.size) - np.repeat(np.cumsum(nk) - nk, nk)
    t = frames.indices[frames.indptr[kp][rep] + offs]
    M = np.bincount(rep, weights=C[jp[rep], t], minlength=kp.size) / np.maximum(nk, 1)
    keys = kp.astype(np.int64) * K + jp  # sorted (csr, sorted indices)
    # for every entry (r, k) of A, the components j present at pixel r
    Ar = A.tocsr()
    Ar.sort_indices()
    col = np.repeat(np.arange(K), np.diff(A.indptr))
    rows = A.indices
    m = np.diff(Ar.indptr)[rows]
    step = max(1, int(4_000_000 // max(1, int(m.mean()) if m.size else 1)))
    for e0 in range(0, A.nnz, step):  # bounded memory
        e1 = min(A.nnz, e0 + step)
        me = m[e0:e1]
        rep2 = np.repeat(np.arange(e0, e1), me)
        offs2 = np.arange(rep2.size) - np.repeat(np.cumsum(me) - me, me)
        q = Ar.indptr[rows[rep2]] + offs2
        key = col[rep2].astype(np.int64) * K + Ar.indices[q]
        i = np.searchsorted(keys, key)
        i[i >= keys.size] = 0
        hit = keys[i] == key
        out[e0:e1] = np.bincount(
            rep2[hit] - e0, weights=Ar.data[q[hit]] * M[i[hit]], minlength=e1 - e0
        )
    return out


def _frames_as_2d(block: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(block, dtype=np.float32).reshape(block.shape[0], -1)


@numba.njit(nogil=True, cache=True)
def _accumulate_support_sums(
    Y, frame_ptr, frame_idx, comps, entry_ptr, entry_pix, acc
):  # pragma: no cover
    """acc[e] += sum of Y[t, entry_pix[e]] over the frames t of each component.

    Compiled without the GIL: this is the evaluation's inner loop, and a
    Python loop here starves the GUI thread while evaluation runs in a worker.
    """
    for k in comps:
        for fi in range(frame_ptr[k], frame_ptr[k + 1]):
            t = frame_idx[fi]
            for e in range(entry_ptr[k], entry_ptr[k + 1]):
                acc[e] += Y[t, entry_pix[e]]


def _support_sums_job(
    movie: Any, s0: int, s1: int, Wc: Any, A_indptr: np.ndarray, entry_pix: np.ndarray, nnz: int
) -> tuple[np.ndarray, int]:
    """One chunk of frames' contribution to the support sums (run on a cluster worker)."""
    import os

    raw = np.asarray(movie[s0:s1])
    Y = _frames_as_2d(raw)
    if raw.dtype.kind in "fc" and not np.isfinite(Y).all():
        raise InputError("movie", f"contains NaN or inf (frames {s0}-{s1 - 1})")
    acc = np.zeros(nnz)
    comps = np.where(np.diff(Wc.indptr) > 0)[0].astype(np.int64)
    _accumulate_support_sums(
        Y, Wc.indptr.astype(np.int64), Wc.indices.astype(np.int64), comps, A_indptr, entry_pix, acc
    )
    return acc, os.getpid()


def _iter_remote_sums(
    executor: Any,
    movie: Any,
    W: Any,
    needed: np.ndarray,
    T: int,
    chunk_size: int,
    A_indptr: np.ndarray,
    entry_pix: np.ndarray,
    acc: np.ndarray,
    workers: set,
):
    """Add the support sums of every chunk, computed on ``executor``, into ``acc`` (a generator)."""
    dask = hasattr(executor, "scatter")
    kw = {"pure": False} if dask else {}
    if dask:
        A_indptr, entry_pix = executor.scatter([A_indptr, entry_pix], broadcast=True)
    spans = []
    for t0 in range(0, T, chunk_size):
        sel = needed[(needed >= t0) & (needed < min(T, t0 + chunk_size))]
        if sel.size:
            spans.append((int(sel[0]), int(sel[-1]) + 1))
    futures = [
        executor.submit(
            _support_sums_job, movie, s0, s1, W[s0:s1].tocsc(), A_indptr, entry_pix, acc.size, **kw
        )
        for s0, s1 in spans
    ]
    total = max(1, len(futures))
    yield Progress("r-values", 0, total)
    try:
        for i, fu in enumerate(futures):
            part, pid = fu.result()
            acc += part
            workers.add(pid)
            yield Progress("r-values", i + 1, total)
    finally:
        for fu in futures:
            fu.cancel()


def iter_spatial_r_values(
    movie: Any,
    estimates: Any,
    *,
    Npeaks: int = 5,
    tB: int = -3,
    tA: int = 10,
    thres: float = 0.3,
    Athresh: float = 0.1,
    subtract_background: bool = True,
    overlap: str = "dominant+subtract",
    chunk_size: int | None = None,
    executor: Any = None,
    workers: set | None = None,
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray]]:
    """r-values of all components; returns ``(r_values, n_frames_used)``.

    ``overlap`` says how overlapping components are handled:

    * ``"dominant+subtract"`` (default): keep the active frames where the
      component dominates its neighbours (``c_k(t) >= sum_j G_kj c_j(t)``,
      ``G_kj = a_k.a_j / a_k.a_k``), then subtract the neighbours' mean
      contribution ``a_j * mean(c_j)`` over those frames;
    * ``"dominant"``: the same frames, nothing subtracted;
    * ``"subtract"``: all active frames, neighbours subtracted;
    * ``"exclude"``: CaImAn's rule: drop the frames where an overlapping
      component (footprint cosine > ``Athresh``) is active too (all frames
      if none is left), nothing subtracted.
    """
    modes = ("subtract", "exclude", "dominant", "dominant+subtract")
    if overlap not in modes:
        raise InputError("overlap", f"must be one of {modes}, got {overlap!r}")
    # a copy: scipy shares the index arrays of a dtype conversion, and sorting them in
    # place would scramble the caller's footprints when their indices are unsorted
    A = sparse.csc_matrix(estimates.A, dtype=np.float64, copy=True)
    A.eliminate_zeros()
    A.sort_indices()
    K = A.shape[1]
    T = int(movie.shape[0])
    dims = tuple(int(d) for d in estimates.dims)
    P = int(np.prod(dims))
    if K == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    L = find_active_frames(estimates.C, Npeaks=Npeaks, tB=tB, tA=tA, thres=thres)
    if overlap == "exclude":
        own = _own_frames(A, L, Athresh)
    elif overlap.startswith("dominant"):
        own = _dominant_frames(A, L, estimates.C)
    else:
        own = L
    n_used = np.diff(own.indptr).astype(np.int64)
    W = own.T.tocsr()  # (T, K): rows are frames
    # pixel indices of each support in C order (movie frames are array order)
    perm = np.arange(P).reshape(dims).swapaxes(-1, -2).ravel()  # caiman index -> C index
    acc = np.zeros(A.nnz)  # sum of the movie over each component's frames, aligned with A.data
    entry_pix = perm[A.indices].astype(np.int64)  # C-order pixel of each entry of A
    needed = np.where(np.diff(W.indptr) > 0)[0]
    if chunk_size is None:
        # ~16 MB per read: one memmap copy holds the GIL, so big reads stall a GUI thread
        chunk_size = int(max(1, min(T, (16 << 20) // max(1, 4 * P))))
    chunk_size = max(1, int(chunk_size))
    total = int(math.ceil(T / chunk_size))
    if executor is not None:
        # chunks on a cluster: each worker reads its frames (from the shared path) and
        # returns its partial sums; bigger chunks, fewer tasks
        yield from _iter_remote_sums(
            executor,
            movie,
            W,
            needed,
            T,
            max(chunk_size, 128),
            A.indptr.astype(np.int64),
            entry_pix,
            acc,
            workers if workers is not None else set(),
        )
        total = 0
    else:
        yield Progress("r-values", 0, total)
    done = 0
    for t0 in range(0, T if executor is None else 0, chunk_size):
        t1 = min(T, t0 + chunk_size)
        done += 1
        sel = needed[(needed >= t0) & (needed < t1)]
        if sel.size == 0:
            yield Progress("r-values", done, total)
            continue
        # read only the span of needed frames in this chunk (contiguous: memmap friendly)
        s0, s1 = int(sel[0]), int(sel[-1]) + 1
        raw = np.asarray(movie[s0:s1])
        Y = _frames_as_2d(raw)
        if raw.dtype.kind in "fc" and not np.isfinite(Y).all():
            raise InputError("movie", f"contains NaN or inf (frames {s0}-{s1 - 1})")
        Wc = W[s0:s1].tocsc()
        comps = np.where(np.diff(Wc.indptr) > 0)[0].astype(np.int64)
        _accumulate_support_sums(
            Y,
            Wc.indptr.astype(np.int64),
            Wc.indices.astype(np.int64),
            comps,
            A.indptr.astype(np.int64),
            entry_pix,
            acc,
        )
        yield Progress("r-values", done, total)
    # mean over the frames, minus the background and the overlapping components
    col = np.repeat(np.arange(K), np.diff(A.indptr))  # component of each entry of A.data
    mY = acc / np.maximum(n_used, 1)[col]
    b = np.asarray(estimates.b) if estimates.b is not None else None
    f = np.asarray(estimates.f) if estimates.f is not None else None
    if subtract_background and b is not None and f is not None and b.size and f.size:
        if b.ndim == 1:
            b = b[:, None]
        if f.ndim == 1:
            f = f[None, :]
        fmean = np.asarray(own @ f.T.astype(np.float64)) / np.maximum(n_used, 1)[:, None]  # (K, nb)
        mY -= np.einsum("ij,ij->i", b[A.indices].astype(np.float64), fmean[col])
    if overlap.endswith("subtract"):
        mY -= _overlap_contributions(A, own, n_used, estimates.C)
    # Pearson correlation over each support (a > 0), vectorized over components
    pos = A.data > 0
    cp = col[pos]
    x, y = A.data[pos], mY[pos]
    n = np.bincount(cp, minlength=K).astype(np.float64)
    nn = np.maximum(n, 1)
    xm = np.bincount(cp, x, minlength=K) / nn
    ym = np.bincount(cp, y, minlength=K) / nn
    xc, yc = x - xm[cp], y - ym[cp]
    sxy = np.bincount(cp, xc * yc, minlength=K)
    sxx = np.bincount(cp, xc * xc, minlength=K)
    syy = np.bincount(cp, yc * yc, minlength=K)
    den = np.sqrt(sxx * syy)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, sxy / np.where(den > 0, den, 1), 0.0)
    r[(n < 3) | (n_used == 0)] = 0.0
    return r, n_used


# ----------------------------------------------------------------------------- driver


def _validate(movie: Any, estimates: Any) -> None:
    shape = tuple(int(s) for s in getattr(movie, "shape", ()))
    dims = tuple(int(d) for d in estimates.dims)
    if len(shape) not in (3, 4):
        raise InputError("movie", f"must be (T, Y, X) or (T, Z, Y, X), got shape {shape}")
    if shape[1:] != dims:
        raise InputError(
            "movie",
            f"frame shape {shape[1:]} (movie shape {shape}) does not match the "
            f"estimates' dims {dims} (array order)",
        )
    T = int(np.asarray(estimates.C).shape[1]) if np.ndim(estimates.C) == 2 else -1
    if shape[0] != T:
        raise InputError(
            "movie", f"has {shape[0]} frames (shape {shape}) but the estimates' traces have {T}"
        )
    if estimates.A.shape[0] != int(np.prod(dims)):
        raise InputError(
            "estimates",
            f"A has {estimates.A.shape[0]} pixels but dims {dims} give {int(np.prod(dims))}",
        )


def _get(params: Any, name: str, default: Any) -> Any:
    if params is None:
        return default
    try:
        v = params.get(name, default) if hasattr(params, "get") else params[name]
    except KeyError:
        v = default
    return default if v is None else v


@single_threaded_blas
def iter_compute_metrics(
    movie: Any,
    estimates: Any,
    params: Any = None,
    *,
    chunk_size: int | None = None,
    subtract_background: bool = True,
    overlap: str = "dominant+subtract",
    executor: Any = None,
) -> Generator[Progress, None, Metrics]:
    """Compute SNR, r-values and sizes of all components (progress generator).

    Parameters
    ----------
    movie : (T, Y, X) or (T, Z, Y, X) array-like (numpy, memmap, dask ...)
        The (motion-corrected) movie the estimates were fitted on.
    estimates : Estimates
    params : CaimanParams or dict, optional
        ``fr``, ``decay_time`` (for ``N``) and ``use_cnn`` (for the warning).
    chunk_size : frames read at a time (default: about 128 MB of float32).
    subtract_background : subtract ``b f`` before the r-value correlation.
    overlap : ``"dominant+subtract"`` (default), ``"dominant"``,
        ``"subtract"`` or ``"exclude"`` (CaImAn); see :func:`iter_spatial_r_values`.
    executor : optional ``dask.distributed.Client`` (or executor): the chunks
        of frames of the r-values run there; the process ids that ran them are
        in ``timings["workers"]``.

    Raises
    ------
    InputError
        Movie and estimates do not match, or NaN/inf in the traces or the movie.
    """
    _validate(movie, estimates)
    timings: dict[str, float] = {}
    K = estimates.n_components if hasattr(estimates, "n_components") else estimates.A.shape[1]
    fr = float(_get(params, "fr", 30.0))
    decay = float(_get(params, "decay_time", 0.4))
    N = int(max(1, math.ceil(fr * decay)))
    use_cnn = bool(_get(params, "use_cnn", False))
    global _CNN_WARNED
    if use_cnn and not _CNN_WARNED:  # once per process: batches would repeat it for every item
        _CNN_WARNED = True
        log.warning(
            "use_cnn=True: the native backend has no CNN classifier; evaluating "
            "with SNR and r-values only (leave use_cnn unset or False, or use backend='caiman')"
        )
    yield Progress("SNR", 0, 1)
    t = time.perf_counter()
    C = np.asarray(estimates.C, dtype=np.float64)
    raw = C + np.asarray(estimates.YrA, dtype=np.float64) if estimates.YrA is not None else C
    _check_traces(C, "C")
    _check_traces(raw, "C + YrA")
    snr, fitness, sd, md = event_exceptionality(raw, N) if K else (np.zeros(0),) * 4
    timings["snr"] = time.perf_counter() - t
    yield Progress("SNR", 1, 1)
    t = time.perf_counter()
    if chunk_size is None and _get(params, "memory_limit", None) is not None:
        from .memory import budget

        P = int(np.prod(estimates.dims))
        chunk_size = budget(params).frames(
            4 * P, copies=2, at_most=max(1, (16 << 20) // max(1, 4 * P))
        )
    workers: set = set()
    r, n_used = yield from iter_spatial_r_values(
        movie,
        estimates,
        chunk_size=chunk_size,
        subtract_background=subtract_background,
        overlap=overlap,
        executor=executor,
        workers=workers,
    )
    timings["r_values"] = time.perf_counter() - t
    if executor is not None:
        timings["workers"] = sorted(workers)  # type: ignore[assignment]
    size = np.diff(sparse.csc_matrix(sparse.csc_matrix(estimates.A) > 0).indptr).astype(np.int64)
    yield Progress("shape", 0, 1)
    t = time.perf_counter()
    from .shapes import shape_metrics

    dims = tuple(int(d) for d in estimates.dims)
    gsig = _get(params, "gSig", (4,) * len(dims))
    sm = shape_metrics(estimates.A, dims, gsig)
    anat = getattr(estimates, "from_anatomy", None)
    anat = None if anat is None or np.size(anat) != K else np.asarray(anat, bool).ravel()
    from .duplicates import duplicate_scores

    dup_score, dup_of = duplicate_scores(estimates.A, C, snr)
    timings["shape"] = time.perf_counter() - t
    yield Progress("shape", 1, 1)
    return Metrics(
        SNR_comp=snr,
        r_values=r,
        size=np.asarray(size, np.int64),
        cnn_preds=None,
        cnn_available=False,
        fitness=fitness,
        noise_sd=sd,
        mode=md,
        n_frames_used=n_used,
        n_samples=N,
        timings=timings,
        solidity=sm.solidity,
        n_pieces=sm.n_pieces,
        area_ratio=sm.area_ratio,
        anatomy=anat,
        dup_score=dup_score,
        dup_of=dup_of,
        elongation=sm.elongation,
        area_px=sm.area_px,
    )


def compute_metrics(movie: Any, estimates: Any, params: Any = None, **kw) -> Metrics:
    """Blocking wrapper of :func:`iter_compute_metrics`."""
    return run(iter_compute_metrics(movie, estimates, params, **kw))


def _num(name: str, v: Any, lo: float, hi: float) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise InputError(name, f"must be a number, got {v!r}") from None
    if not (lo <= x <= hi):  # also rejects NaN
        raise InputError(name, f"must be in [{lo}, {hi}], got {v!r}")
    return x


def apply_thresholds(
    metrics: Metrics,
    *,
    min_SNR: float = 2.5,
    SNR_lowest: float = 0.5,
    rval_thr: float = 0.8,
    rval_lowest: float = -1.0,
    min_size: float | None = None,
    max_size: float | None = None,
    use_cnn: bool = False,
    min_cnn_thr: float = 0.9,
    cnn_lowest: float = 0.1,
    min_solidity: float | None = None,
    max_pieces: float | None = None,
    min_area_ratio: float | None = None,
    max_area_ratio: float | None = None,
    accept_anatomy: bool = False,
    min_classifier_prob: float = 0.5,
    max_duplicate: float | None = None,
    max_elongation: float | None = 2.5,
    joint_SNR_frac: float | None = JOINT_SNR_FRAC,
    joint_rval_frac: float | None = JOINT_RVAL_FRAC,
    high_rval_thr: float | None = HIGH_RVAL_THR,
    small_floor_px: float | None = SMALL_FLOOR_PX,
) -> tuple[np.ndarray, np.ndarray]:
    """Accept/reject components from precomputed metrics (pure, fast).

    Returns ``(idx_components, idx_components_bad)``: sorted int64 indices.
    With ``use_cnn=True`` but no CNN predictions (``metrics.cnn_preds is
    None``), the CNN terms are ignored; so are the shape terms (``min_solidity``,
    ``max_pieces``, ``min_area_ratio``, ``max_area_ratio``, ``max_elongation``; None: off) when the
    metrics hold no shape (e.g. a CaImAn file).  ``max_elongation`` (2.5) and the joint test
    (``joint_SNR_frac`` 0.625, ``joint_rval_frac`` 0.875: ``SNR >= 0.625 min_SNR and r >= 0.875
    rval_thr`` also passes; None: off) are on by default, so that callers passing only the other
    thresholds (the Evaluation dock's sliders) agree with the headless evaluation.  Like the shape
    terms, the joint test is ignored when the metrics hold no shape (a CaImAn file keeps CaImAn's
    rule).  ``high_rval_thr`` (0.9; None: off): a component with r >= it is exempt from the
    ``SNR_lowest`` floor (SNR > 0 still needed); ignored, like the joint test, on metrics
    without shape.  ``small_floor_px`` (10; None or 0: off): where the area floor
    ``min_area_ratio`` x the expected disc is below this many pixels, a footprint whose cut
    area (``metrics.area_px``) is at most one pixel short of it, and at least a 2 x 2 block
    (:data:`MIN_BLOB_PX`), passes the floor.
    ``accept_anatomy``: components
    from anatomical seeds pass the SNR / r-value tests (their shape still counts).
    When the metrics hold classifier probabilities (``classifier_prob``),
    ``p >= min_classifier_prob`` replaces the SNR / r-value / CNN test.
    ``max_duplicate`` (None: off; needs ``metrics.dup_score``): a component
    accepted by every other test is rejected when its duplicate score
    (:mod:`.duplicates`) exceeds it and the stronger component it duplicates
    is accepted.

    Raises
    ------
    InputError
        A threshold out of range (SNRs must be >= 0, r-values in [-1, 1], CNN in [0, 1]) or NaN.
    """
    min_SNR = _num("min_SNR", min_SNR, 0.0, math.inf)
    SNR_lowest = _num("SNR_lowest", SNR_lowest, 0.0, math.inf)
    rval_thr = _num("rval_thr", rval_thr, -1.0, 1.0)
    rval_lowest = _num("rval_lowest", rval_lowest, -1.0, 1.0)
    snr = np.asarray(metrics.SNR_comp)
    r = np.asarray(metrics.r_values)
    with np.errstate(invalid="ignore"):
        good = (snr >= min_SNR) | (r >= rval_thr)
        # two weaker tests passing together; like the shape terms, only on our own metrics (a CaImAn
        # file, without shape metrics, keeps CaImAn's accepted set)
        if (
            joint_SNR_frac is not None
            and joint_rval_frac is not None
            and metrics.solidity is not None
        ):
            good |= (snr >= _num("joint_SNR_frac", joint_SNR_frac, 0.0, 1.0) * min_SNR) & (
                r >= _num("joint_rval_frac", joint_rval_frac, 0.0, 1.0) * rval_thr
            )
        floor = snr > SNR_lowest
        if high_rval_thr is not None and metrics.solidity is not None:
            # a footprint the movie shows clearly in its own frames, with faint transients
            floor |= (r >= _num("high_rval_thr", high_rval_thr, -1.0, 1.0)) & (snr > 0)
        ok = floor & (r > rval_lowest)
        cnn = metrics.cnn_preds
        if use_cnn and cnn is not None:
            min_cnn_thr = _num("min_cnn_thr", min_cnn_thr, 0.0, 1.0)
            cnn_lowest = _num("cnn_lowest", cnn_lowest, 0.0, 1.0)
            cnn = np.asarray(cnn)
            good |= cnn >= min_cnn_thr
            ok &= cnn > cnn_lowest
        if min_size is not None or max_size is not None:
            size = np.asarray(metrics.size)
            if min_size is not None:
                ok &= size >= _num("min_size", min_size, 0.0, math.inf)
            if max_size is not None:
                ok &= size <= _num("max_size", max_size, 0.0, math.inf)
        prob = metrics.classifier_prob
        if prob is not None:
            good = np.asarray(prob, float) >= _num(
                "min_classifier_prob", min_classifier_prob, 0.0, 1.0
            )
        if accept_anatomy and metrics.anatomy is not None:
            anat = np.asarray(metrics.anatomy, bool)
            good |= anat
            ok |= anat
        shape_ok = _shape_ok(
            metrics,
            min_solidity,
            max_pieces,
            min_area_ratio,
            max_area_ratio,
            max_elongation,
            small_floor_px,
        )
        if shape_ok is not None:
            ok &= shape_ok
    acc = good & ok
    if max_duplicate is not None and metrics.dup_score is not None and metrics.dup_of is not None:
        from .duplicates import duplicate_mask

        acc &= ~duplicate_mask(
            metrics.dup_score,
            metrics.dup_of,
            acc,
            _num("max_duplicate", max_duplicate, 0.0, 1.0),
            snr,
        )
    return np.flatnonzero(acc), np.flatnonzero(~acc)


def _shape_ok(
    metrics: Metrics,
    min_solidity,
    max_pieces,
    min_area_ratio,
    max_area_ratio,
    max_elongation=None,
    small_floor_px=None,
) -> np.ndarray | None:
    tests = []
    if min_solidity is not None and metrics.solidity is not None:
        tests.append(np.asarray(metrics.solidity) >= _num("min_solidity", min_solidity, 0.0, 1.0))
    if max_pieces is not None and metrics.n_pieces is not None:
        tests.append(np.asarray(metrics.n_pieces) <= _num("max_pieces", max_pieces, 0.0, math.inf))
    if min_area_ratio is not None and metrics.area_ratio is not None:
        lo = _num("min_area_ratio", min_area_ratio, 0.0, math.inf)
        ratio = np.asarray(metrics.area_ratio, dtype=np.float64)
        passed = ratio >= lo
        if small_floor_px is not None and metrics.area_px is not None:
            small = _num("small_floor_px", small_floor_px, 0.0, math.inf)
            px = np.asarray(metrics.area_px, dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                floor_px = lo * px / ratio  # the floor in pixels: min_area_ratio x the disc
            # at a floor of a few pixels, one pixel short is within what the cut can measure
            passed |= (px >= MIN_BLOB_PX) & (ratio > 0) & (floor_px < small) & (px + 1 >= floor_px)
        tests.append(passed)
    if max_area_ratio is not None and metrics.area_ratio is not None:
        tests.append(
            np.asarray(metrics.area_ratio) <= _num("max_area_ratio", max_area_ratio, 0.0, math.inf)
        )
    if max_elongation is not None and metrics.elongation is not None:
        tests.append(
            np.asarray(metrics.elongation) <= _num("max_elongation", max_elongation, 1.0, math.inf)
        )
    if not tests:
        return None
    return np.logical_and.reduce(tests)


def apply_classifier(metrics: Metrics, estimates: Any, params: Any) -> Metrics:
    """Set ``metrics.classifier_prob`` from the model file named by the parameter ``classifier``.

    ``"default"``: the shipped model; None: leave as is.
    """
    path = _get(params, "classifier", None)
    if path in (None, "", False):
        return metrics
    from .classifier import Classifier, default_model_path

    model = Classifier.load(default_model_path() if path == "default" else path)
    metrics.classifier_prob = model.predict(metrics, estimates, _get(params, "gSig", (4, 4)))
    return metrics


def iter_evaluate_components(
    movie: Any, estimates: Any, params: Any = None, **kw
) -> Generator[Progress, None, Metrics]:
    """Compute the metrics, threshold them with ``params`` and return them.

    Sets ``estimates.idx_components`` / ``idx_components_bad``.
    """
    from .border import movie_for_cnmf

    # the movie as CNMF read it: motion-correction borders zeroed (one rule for every path)
    metrics = yield from iter_compute_metrics(movie_for_cnmf(movie), estimates, params, **kw)
    apply_classifier(metrics, estimates, params)
    good, bad = apply_thresholds(
        metrics, **thresholds_from_params(params)
    )  # engine.resolve.thresholds
    estimates.idx_components, estimates.idx_components_bad = good, bad
    return metrics


def evaluate_components(movie: Any, estimates: Any, params: Any = None, **kw) -> Metrics:
    """Blocking wrapper of :func:`iter_evaluate_components`."""
    return run(iter_evaluate_components(movie, estimates, params, **kw))
