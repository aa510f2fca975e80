"""Benchmark of batches: the Dask path against one-after-another, the motion
cache, and the per-item overhead of a 100-item batch.

    python bench/bench_batch.py [--quick]

1. Four CNMF variants (K = 6, 8, 10, 12) of one 2D movie (1000 x 128 x 128,
   40 neurons; motion + CNMF with patches + evaluation): run one after another
   in this process (motion once, then the cache; patches on 2 threads), and on
   a ``dask.distributed.LocalCluster`` with one single-threaded worker per core
   (items and patches on the cluster). Wall time of each, and the results
   compared (identical components expected).
2. The motion cache: the first item's motion step against a later hit.
3. 100 items (motion only, cache hits, a 100 x 64 x 64 movie): adding them,
   running them, time per item beyond the work itself, batch file size, peak
   RSS of this process.

Writes ``bench/results/batch.md``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    import distributed
    import tifffile

    from napari_caiman.app.batch import Batch
    from napari_caiman.engine.synthetic import make_movie_2d

    shape = (300, 96, 96) if args.quick else (1000, 128, 128)
    n_small = 20 if args.quick else 100
    base = {"max_shifts": (4, 4), "gSig": (4, 4), "rf": 20, "stride": 8, "fr": 30, "use_cnn": False}
    grid = {"K": [6, 8, 10, 12]}
    lines = [
        "# Batch benchmark",
        "",
        f"Machine: {os.cpu_count()} cores. Movie {shape[0]} x {shape[1]} x {shape[2]} uint16, 40 neurons, "
        f"rigid motion 3 px; items: motion + CNMF (patches rf 20, stride 8) + evaluation, K in {grid['K']}.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        syn = make_movie_2d(shape, n_neurons=40, rigid_motion=3.0, dtype=np.uint16, seed=11)
        tifffile.imwrite(tmp / "m.tif", syn.movie)

        # 1. four variants: sequential vs Dask --------------------------------------
        seq = Batch(tmp / "seq.json", cache_dir=tmp / "cache_seq")
        seq.add_variants("v", tmp / "m.tif", base, grid)
        t0 = time.perf_counter()
        seq.run()
        t_seq = time.perf_counter() - t0
        per_item = {i.name: i.elapsed for i in seq}

        t0 = time.perf_counter()
        with (
            distributed.LocalCluster(
                n_workers=os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            t_start = time.perf_counter() - t0
            dsk = Batch(tmp / "dask.json", cache_dir=tmp / "cache_dask")
            dsk.add_variants("v", tmp / "m.tif", base, grid)
            t1 = time.perf_counter()
            dsk.run(
                client=client
            )  # default: 4 items >= workers, so patches stay on each item's worker
            t_dask = time.perf_counter() - t1
            t2 = time.perf_counter()
            dsk2 = Batch(tmp / "dask_patches.json", cache_dir=tmp / "cache_dask2")
            dsk2.add_variants("v", tmp / "m.tif", base, grid)
            dsk2.run(client=client, patches_on_cluster=True)
            t_dask_patches = time.perf_counter() - t2
        from napari_caiman.engine.cnmf.compare import match_components
        from napari_caiman.engine.cnmf.estimates import pixels_to_images

        agree = []  # the Dask items against the sequential ones, and both against the truth
        for n in seq.names:
            a, d = seq.results(n).estimates, dsk.results(n).estimates
            same = a.A.shape == d.A.shape and np.array_equal(a.A.toarray(), d.A.toarray())
            m = match_components(d, pixels_to_images(a.A, a.dims), dims=a.dims)
            f_seq = match_components(a, syn.footprints).f1
            f_dsk = match_components(d, syn.footprints).f1
            agree.append(
                f"{n}: {'identical' if same else f'{a.A.shape[1]} vs {d.A.shape[1]} components, '}"
                f"{'' if same else f'matched F1 {m.f1:.3f}, '}F1 vs truth {f_seq:.3f} / {f_dsk:.3f}"
            )
        lines += [
            "## Four variants",
            "",
            "| how | wall time | speed-up |",
            "|---|---|---|",
            f"| one after another, this process (patches on 2 threads, motion cached after item 1) "
            f"| {t_seq:.1f} s | 1.00 |",
            f"| Dask LocalCluster, {os.cpu_count()} workers x 1 thread, items on the cluster (default: "
            f"patches on each item's worker) | {t_dask:.1f} s | {t_seq / t_dask:.2f} |",
            f"| Dask LocalCluster, items and their CNMF patches on the cluster "
            f"| {t_dask_patches:.1f} s | {t_seq / t_dask_patches:.2f} |",
            "",
            f"Cluster start-up (not included): {t_start:.1f} s. Items (sequential): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in per_item.items())
            + ".",
            "",
            "Dask items against the sequential ones (Dask workers run BLAS single-threaded, so float "
            "sums may round differently): " + "; ".join(agree) + ".",
            "",
        ]
        print("\n".join(lines[-8:]), flush=True)

        # 2. cache --------------------------------------------------------------------
        prov = [seq.results(n).provenance for n in seq.names]
        miss = prov[0]["timings"]["motion"] + prov[0]["timings"].get("summary", 0)
        lines += [
            "## Motion cache",
            "",
            f"First item: motion + summary images {miss:.2f} s (cache {prov[0]['motion_cache']}); "
            f"the other three: cache {', '.join(p['motion_cache'] for p in prov[1:])}, "
            f"item time {per_item[seq.names[0]]:.1f} s for the first vs "
            f"{np.mean([per_item[n] for n in seq.names[1:]]):.1f} s mean for the rest. "
            f"Cache on disk: {seq.cache.size_bytes() / 1e6:.1f} MB for one movie.",
            "",
        ]

        # 3. 100 small items -------------------------------------------------------------
        small = make_movie_2d(
            (100, 64, 64), n_neurons=5, rigid_motion=2.0, dtype=np.uint16, seed=3
        ).movie
        tifffile.imwrite(tmp / "s.tif", small)
        big = Batch(tmp / "many.json", cache_dir=tmp / "cache_many")
        rss0 = _rss_gb()
        t0 = time.perf_counter()
        big.add_variants(
            "item",
            tmp / "s.tif",
            {"max_shifts": (3, 3)},
            {"niter_rig": [1], "fr": list(range(1, n_small + 1))},
            steps=("motion",),
        )
        t_add = time.perf_counter() - t0
        t0 = time.perf_counter()
        big.run()
        t_run = time.perf_counter() - t0
        work = [big.results(i.name).provenance["elapsed"] for i in big]
        overhead = (t_run - sum(work)) / n_small
        lines += [
            f"## {n_small} items",
            "",
            f"Motion-only items on a 100 x 64 x 64 movie, all with the same motion parameters (the first "
            f"computes, the rest hit the cache). Adding the {n_small} items (validated against the movie, "
            f"one grid call): {t_add:.2f} s. Running them: {t_run:.1f} s, {t_run / n_small * 1000:.0f} ms per item, "
            f"of which {overhead * 1000:.0f} ms per item is batch bookkeeping (status writes of the JSON file, "
            f"results file, opening the movie) beyond the pipeline's own time. Batch file "
            f"{big.path.stat().st_size / 1e3:.0f} kB. Peak RSS of the process {_rss_gb():.2f} GB "
            f"(before the 100 items {rss0:.2f} GB).",
            "",
        ]
        print("\n".join(lines[-3:]), flush=True)
    out = HERE / "results" / ("batch_quick.md" if args.quick else "batch.md")
    out.write_text("\n".join(lines))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
