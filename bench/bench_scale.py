"""Recording-scale benchmark: the whole command on long movies, memory and time per frame.

    python bench/bench_scale.py [--frames 3000 10000] [--shape 512 512] [--memory-limit 4GB] [--guard 6GB]

For each T: a synthetic 512x512 uint16 movie with known neurons and rigid +
non-rigid motion is generated *streaming* to a BigTIFF on disk (the generator
never holds the movie), then

    napari-caiman run movie.tif --steps motion,cnmf,evaluate --memory-limit 4GB \\
        --set pw_rigid=True --set strides=(48,48) --set overlaps=(24,24) --set max_shifts=(6,6) \\
        --set K=10 --set gSig=(4,4) --set rf=25 --set stride=10

runs as a child process. Memory is sampled every 0.1 s from /proc for the
whole process tree: the sum of RssAnon + RssShmem (what the kernel cannot
drop; resident pages of memory-mapped files are left out) and the plain RSS.
A guard kills the run above ``--guard`` of RssAnon + RssShmem (the machine is
shared). F1 of the found (and of the accepted) components against the truth
by footprint cosine >= 0.5 (Hungarian matching). Writes ``bench/results/scale.md``
(appending rows per T) and ``docs/scale.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "scale.json"

PARAMS = {
    "pw_rigid": True,
    "strides": (48, 48),
    "overlaps": (24, 24),
    "max_shifts": (6, 6),
    "max_deviation_rigid": 3,
    "K": 10,
    "gSig": (4, 4),
    "rf": 25,
    "stride": 10,
    "use_cnn": False,
    "n_processes": 2,
}


def _status(pid: int) -> tuple[int, int]:
    """(RssAnon + RssShmem, VmRSS) in bytes of one process."""
    anon = rss = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("RssAnon:", "RssShmem:")):
                    anon += int(line.split()[1]) * 1024
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return anon, rss


def _tree(pid: int) -> list[int]:
    import psutil

    try:
        p = psutil.Process(pid)
        return [pid] + [c.pid for c in p.children(recursive=True)]
    except psutil.Error:
        return []


class Sampler(threading.Thread):
    """Samples the process tree of ``pid`` every ``dt`` s; kills it above ``guard`` bytes."""

    def __init__(self, proc: subprocess.Popen, guard: int, dt: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.proc, self.guard, self.dt = proc, guard, dt
        self.peak_anon = self.peak_rss = 0
        self.killed = False
        self.trace: list[tuple[float, int]] = []

    def run(self) -> None:
        t0 = time.perf_counter()
        while self.proc.poll() is None:
            anon = rss = 0
            for p in _tree(self.proc.pid):
                a, r = _status(p)
                anon += a
                rss += r
            self.peak_anon, self.peak_rss = max(self.peak_anon, anon), max(self.peak_rss, rss)
            self.trace.append((time.perf_counter() - t0, anon))
            if anon > self.guard:
                self.killed = True
                for p in reversed(_tree(self.proc.pid)):
                    try:
                        os.kill(p, 9)
                    except OSError:
                        pass
                return
            time.sleep(self.dt)


#: volumes (T, Z, Y, X): rigid 3D motion (z shifts up to 1 plane), gSig 2 planes deep, patches over the
#: whole depth; the rest as in PARAMS
PARAMS_3D = {
    "pw_rigid": False,
    "max_shifts": (6, 6, 1),
    "K": 30,
    "gSig": (4, 4, 2),
    "rf": (25, 25, 12),
    "stride": (10, 10, 4),
    "use_cnn": False,
    "n_processes": 2,
}


def params_for(shape) -> dict:
    return PARAMS if len(shape) == 2 else PARAMS_3D


def n_neurons_for(shape) -> int:
    """One neuron per ~550 pixels (2D) or ~2,750 voxels (3D, as in bench_cnmf's volume)."""
    return int(round(np.prod(shape) / (550 if len(shape) == 2 else 2750)))


def make_tiff(
    path: Path, T: int, shape: tuple[int, ...], n_neurons: int, seed: int = 0, reuse: bool = False
):
    from napari_caiman.engine.synthetic import make_movie

    t0 = time.perf_counter()
    if len(shape) == 2:
        motion = dict(gSig=4, rigid_motion=3.0, nonrigid_motion=1.5)
    else:  # CaImAn order (rows, cols, planes)
        motion = dict(gSig=(4, 4, 2), rigid_motion=(3.0, 3.0, 0.5), nonrigid_motion=0.0)
    truth = make_movie(
        (T, *shape),
        n_neurons=n_neurons,
        **motion,
        dtype=np.uint16,
        seed=seed,
        out=path,
        return_flow=False,
        return_truth=False,
        reuse=reuse,
    )
    return truth, time.perf_counter() - t0


def _c_rows_to_caiman(rows, dims):
    """(K, pixels in C order) sparse rows -> (pixels in CaImAn order, K), as ``Estimates.A``."""
    from scipy import sparse

    from napari_caiman.engine.cnmf.estimates import caiman_permutation

    return sparse.csc_matrix(sparse.csr_matrix(rows)[:, caiman_permutation(dims)].T)


def run_case(
    T: int,
    shape,
    n_neurons: int,
    memory_limit: str,
    guard: int,
    tmp: Path,
    extra: list[str],
    movies: Path | None = None,
) -> dict:
    from napari_caiman.engine.cnmf import match_components
    from napari_caiman.io.results_file import load_results

    movie = (movies or tmp) / f"movie_{T}_{'x'.join(map(str, shape))}.tif"
    truth, t_gen = make_tiff(movie, T, shape, n_neurons, reuse=movies is not None)
    from scipy import sparse

    # footprints as sparse rows: a volume's ~600 dense footprints would be gigabytes
    fp = sparse.csr_matrix(
        np.asarray(truth.footprints, np.float32).reshape(len(truth.footprints), -1)
    )
    tr = truth.traces
    del truth
    out = tmp / f"res_{T}.hdf5"
    cmd = [
        sys.executable,
        "-m",
        "napari_caiman.app.cli",
        "run",
        str(movie),
        "--steps",
        "motion,cnmf,evaluate",
        "-o",
        str(out),
        "--memory-limit",
        memory_limit,
        "-q",
        *extra,
    ]
    for k, v in params_for(shape).items():
        cmd += ["--set", f"{k}={v!r}".replace(" ", "")]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc, guard)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.join()
    row = dict(
        T=T,
        shape=list(shape),
        n_neurons=n_neurons,
        memory_limit=memory_limit,
        gen_s=t_gen,
        wall_s=wall,
        s_per_frame=wall / T,
        peak_anon_gb=sampler.peak_anon / 1e9,
        peak_rss_gb=sampler.peak_rss / 1e9,
        killed=sampler.killed,
        rc=proc.returncode,
        load=[round(load0, 1), round(os.getloadavg()[0], 1)],
        date=time.strftime("%Y-%m-%d %H:%M"),
    )
    if proc.returncode != 0:
        row["error"] = (stderr or stdout)[-2000:]
        return row
    res = load_results(out)
    est = res.estimates
    dims = tuple(shape)
    fp_caiman = _c_rows_to_caiman(fp, dims)
    m = match_components(est.A, fp_caiman, est.C, tr, dims=dims)
    acc = res.accepted()
    m_acc = match_components(sparse.csc_matrix(est.A)[:, acc], fp_caiman, est.C[acc], tr, dims=dims)
    tm = res.provenance.get("timings", {})
    row.update(
        found=int(est.A.shape[1]),
        accepted=int(len(acc)),
        f1=m.f1,
        precision=m.precision,
        recall=m.recall,
        f1_accepted=m_acc.f1,
        trace_corr=m.median_trace_corr,
        timings={k: round(float(v), 1) for k, v in tm.items()},
        info=est.info if hasattr(est, "info") else {},
    )
    return row


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _load(r: dict) -> str:
    """Load average of the machine at the start and end of a run (2 cores: above ~2, timings are not a quiet
    machine's)."""
    ld = r.get("load")
    return f"{ld[0]}, {ld[1]}" if ld else "not recorded"


def write_report(rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: (r["shape"], r["T"]))
    lines = [
        "# Recording-scale benchmark",
        "",
        "`python bench/bench_scale.py`: the whole command `napari-caiman run movie.tif --steps "
        "motion,cnmf,evaluate --memory-limit 4GB` (pw-rigid 48/24, max_shifts 6; CNMF gSig 4, K 10, rf 25, "
        "stride 10; evaluation) from a uint16 BigTIFF on disk, synthetic movie generated streaming to disk "
        "(seed 0, rigid 3 px + non-rigid 1.5 px motion, one neuron per ~550 pixels). Memory: peak over the "
        "process tree of RssAnon + RssShmem from /proc sampled every 0.1 s (mapped file pages not counted), "
        "and the plain RSS. F1 against the true neurons (footprint cosine >= 0.5). 2 shared cores "
        "(three other engineers were running jobs: timings are noisy).",
        "",
        "| movie (T, [Z,] Y, X) | neurons | wall s | ms / frame | peak anon+shmem GB | peak RSS GB | found | "
        "accepted | F1 all | F1 accepted | trace corr | stages s | load avg (start, end) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mv = "(" + ", ".join(str(v) for v in [r["T"], *r["shape"]]) + ")"
        if r.get("rc") != 0:
            why = "killed by the guard" if r.get("killed") else "failed"
            lines.append(
                f"| {mv} | {r['n_neurons']} | {r['wall_s']:.0f} | | {r['peak_anon_gb']:.2f} | "
                f"{r['peak_rss_gb']:.2f} | {why} | | | | | | {_load(r)} |"
            )
            continue
        st = ", ".join(f"{k} {v:.0f}" for k, v in r["timings"].items())
        lines.append(
            f"| {mv} | {r['n_neurons']} | {r['wall_s']:.0f} | {1000 * r['s_per_frame']:.1f} | "
            f"{r['peak_anon_gb']:.2f} | {r['peak_rss_gb']:.2f} | {r['found']} | {r['accepted']} | "
            f"{r['f1']:.3f} | {r['f1_accepted']:.3f} | {r['trace_corr']:.3f} | {st} | {_load(r)} |"
        )
    lines += [
        "",
        "CaImAn 1.12.1 on 512x512x10,000 (REFERENCE.md): 24 min 54 s on a quiet machine, "
        "20.6 GB of anonymous memory, F1 0.77.",
        "",
        "Each row records the load average of the 2-core machine when the run started and ended: above ~2 "
        "other jobs shared the cores, and wall times are several times a quiet machine's (the memory and "
        "F1 columns do not depend on it). Notes given with `--note` and the commit measured:",
        "",
    ]
    for r in rows:
        if r.get("note") or r.get("commit"):
            mv = "x".join(str(v) for v in [r["T"], *r["shape"]])
            lines.append(
                f"- {mv} ({r.get('date', '')}, commit {r.get('commit', '?')}): {r.get('note', '')}"
            )
    lines.append("")
    (HERE / "results" / "scale.md").write_text("\n".join(lines))
    ok = [r for r in rows if r.get("rc") == 0]
    if ok:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
        for shape in sorted({tuple(r["shape"]) for r in ok}):
            rs = sorted((r for r in ok if tuple(r["shape"]) == shape), key=lambda r: r["T"])
            T = [r["T"] for r in rs]
            lab = "x".join(str(v) for v in shape)
            ax[0].plot(T, [r["peak_anon_gb"] for r in rs], "o-", label=f"{lab} RssAnon + RssShmem")
            ax[0].plot(
                T, [r["peak_rss_gb"] for r in rs], "s--", label=f"{lab} RSS (incl. mapped files)"
            )
            ax[1].plot(T, [1000 * r["s_per_frame"] for r in rs], "o-", label=lab)
        ax[0].axhline(4, color="k", lw=0.8, ls=":", label="4 GB target")
        ax[0].set(xlabel="frames T", ylabel="peak memory (GB)", xscale="log", ylim=(0, None))
        ax[0].legend(fontsize=7)
        ax[1].set(
            xlabel="frames T", ylabel="wall time per frame (ms)", xscale="log", ylim=(0, None)
        )
        ax[1].legend(fontsize=7)
        fig.suptitle("napari-caiman run --steps motion,cnmf,evaluate --memory-limit 4GB")
        fig.tight_layout()
        (ROOT / "docs").mkdir(exist_ok=True)
        fig.savefig(ROOT / "docs" / "scale.png", dpi=110)


def main(argv=None) -> int:
    from napari_caiman.engine.memory import parse_bytes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[3000, 10000])
    ap.add_argument(
        "--shape", type=int, nargs="+", default=[512, 512], help="Y X, or Z Y X for a volume"
    )
    ap.add_argument("--memory-limit", default="4GB")
    ap.add_argument("--guard", default="6GB", help="kill the run above this RssAnon + RssShmem")
    ap.add_argument(
        "--tmp", default=None, help="folder for the movies (default: a temporary folder)"
    )
    ap.add_argument(
        "--movies",
        default=None,
        help="keep the generated movies in this folder and reuse those already there (same seed)",
    )
    ap.add_argument(
        "--no-report", action="store_true", help="print the rows only (scale.json/md unchanged)"
    )
    ap.add_argument(
        "--note", default="", help="a note kept with the rows of this run (conditions, ...)"
    )
    ap.add_argument("extra", nargs="*", help="more arguments for `napari-caiman run` (after --)")
    args = ap.parse_args(argv)
    guard = parse_bytes(args.guard)
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    shape = tuple(args.shape)
    if len(shape) not in (2, 3):
        ap.error("--shape takes Y X or Z Y X")
    n_neurons = n_neurons_for(shape)
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        for T in args.frames:
            movies = Path(args.movies) if args.movies else None
            if movies is not None:
                movies.mkdir(parents=True, exist_ok=True)
            r = run_case(T, shape, n_neurons, args.memory_limit, guard, Path(d), args.extra, movies)
            r.update(note=args.note, commit=_commit())
            print(json.dumps(r, default=str), flush=True)
            if (
                RESULTS.exists()
            ):  # re-read: another run (another shape) may have added rows meanwhile
                rows = json.loads(RESULTS.read_text())
            rows = [x for x in rows if not (x["T"] == T and x["shape"] == list(shape))] + [r]
            if not args.no_report:
                RESULTS.write_text(json.dumps(rows, indent=1, default=str))
            for f in Path(d).iterdir():
                f.unlink()
    if not args.no_report:
        write_report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
