r"""Command line: the same pipeline as the widgets, without a window.

    napari-caiman run MOVIE [MOVIE ...] --steps motion -o results.hdf5 \
        [--save-movie corrected.tif] [--params params.json] [--set max_shifts=(8,8)]
    napari-caiman evaluate results.hdf5 [--movie MOVIE] [--params p.json] [--set min_SNR=3]
    napari-caiman export results.hdf5 --nwb out.nwb [--csv traces.csv] [--masks masks.tif]
    napari-caiman batch runs.json [--add NAME --movie M [--params p.json] [--set K=5] [--vary "gSig=[(3,3),(4,4)]"]]
        [--list] [--retry-failed] [--scheduler [ADDRESS]] [--parallel N] [--clear-cache]
    napari-caiman params [NAME] [--markdown]
    napari-caiman demo [--headless -o DIR]

Bad input gives one line on stderr (``napari-caiman: error: <argument>: <what>``)
and exit code 2; nothing half-written is left on disk.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.errors import InputError, NapariCaimanError, StateError
from .api import evaluate_results, load_results_file, run_pipeline
from .report import make_progress, summarize

__all__ = ["main", "build_parser"]

PROG = "napari-caiman"


def _parse_set(items: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise InputError("--set", f"expected NAME=VALUE, got {item!r}")
        name, text = item.split("=", 1)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word is a string, e.g. --set border_nan=copy
        out[name.strip()] = value
    return out


def _load_params(params_file: str | None, overrides: dict[str, Any]):
    from ..engine.params import CaimanParams

    params = CaimanParams.from_json(params_file) if params_file else CaimanParams.defaults()
    return params.update(overrides)


def _parse_steps(text: str) -> list[str]:
    from ..engine.pipeline import STEPS

    steps = [s.strip() for s in text.split(",") if s.strip()]
    planned: set[str] = set()
    for s in steps:
        if s in planned:
            raise InputError(
                "--steps",
                f"step {s!r} is not available in this version (available: {', '.join(STEPS)})",
            )
        if s not in STEPS:
            raise InputError("--steps", f"unknown step {s!r}; choose from {', '.join(STEPS)}")
    if not steps:
        raise InputError("--steps", "no step given")
    return steps


def _with_backend(
    overrides: dict[str, Any], backend: str | None, memory_limit: str | None = None
) -> dict[str, Any]:
    if backend is not None:
        overrides = {**overrides, "backend": backend}
    if memory_limit is not None:
        from ..engine.memory import parse_bytes

        parse_bytes(memory_limit, "--memory-limit")
        overrides = {**overrides, "memory_limit": memory_limit}
    return overrides


def _check_overwrite(paths: dict[str, Any], overwrite: bool) -> None:
    """Refuse to replace existing output files unless ``--overwrite``."""
    if overwrite:
        return
    for argument, path in paths.items():
        if path and Path(path).exists():
            raise InputError(
                argument, f"{str(path)!r} exists; give --overwrite to replace it, or another path"
            )


def _interrupted_message(save_movie: Any, before: float | None) -> str:
    """Return what was kept after Ctrl-C (files are written whole, atomically)."""
    kept = []
    if save_movie and Path(save_movie).exists() and Path(save_movie).stat().st_mtime != before:
        kept.append(f"the motion-corrected movie {str(save_movie)!r} was finished and kept")
    return "interrupted; the results file was not written" + (
        "; " + "; ".join(kept) if kept else "; no partial output was kept"
    )


def _cmd_run(args: argparse.Namespace) -> int:
    params = _load_params(
        args.params, _with_backend(_parse_set(args.set), args.backend, args.memory_limit)
    )
    steps = _parse_steps(args.steps)
    _check_overwrite({"--output": args.output, "--save-movie": args.save_movie}, args.overwrite)
    before = (
        Path(args.save_movie).stat().st_mtime
        if args.save_movie and Path(args.save_movie).exists()
        else None
    )
    t0 = time.perf_counter()
    try:
        results = run_pipeline(
            args.movie,
            steps=steps,
            output=args.output,
            params=params,
            save_movie=args.save_movie,
            progress=(progress := make_progress(quiet=args.quiet)),
            scheduler=args.scheduler,
        )
    except KeyboardInterrupt:
        print(f"\n{PROG}: {_interrupted_message(args.save_movie, before)}", file=sys.stderr)
        return 130
    progress.close()
    elapsed = time.perf_counter() - t0
    print(summarize(results, elapsed))
    return 0


def _cmd_train_classifier(args: argparse.Namespace) -> int:
    from ..engine.classifier import train_classifier

    sessions = []
    for path in args.results:
        r = load_results_file(path)
        if r.metrics is None or r.estimates is None:
            raise InputError(
                "results", f"{path} holds no evaluation metrics: run the evaluate step first"
            )
        if r.curation is None or not np.any(r.curation.manual):
            raise InputError(
                "results", f"{path} holds no manual accept/reject decisions to learn from"
            )
        sessions.append((r.metrics, r.estimates, r.curation.manual))
    model = train_classifier(sessions, info={"trained_on": [str(p) for p in args.results]})
    out = model.save(args.output)
    print(
        f"trained on {model.info['n_train']} decisions ({model.info['n_accepted']} accepted, "
        f"{model.info['n_rejected']} rejected); saved: {out}"
    )
    print(f"apply it with: {PROG} evaluate RESULTS --set classifier={out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..engine.params import CaimanParams
    from ..io.results_file import save_results

    results = load_results_file(args.results)
    overrides = CaimanParams.from_json(args.params).changed() if args.params else {}
    overrides.update(_parse_set(args.set))
    progress = make_progress(quiet=args.quiet)
    evaluate_results(
        results, movie_path=args.movie, overrides=overrides, progress=progress, force=args.force
    )
    progress.close()
    out = save_results(args.output or args.results, results)
    # the motion / CNMF times in the file are from the original run: not shown again
    print(summarize(results, timings=getattr(results, "last_timings", False)))
    print(f"saved: {out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .session import Session

    if not (args.nwb or args.csv or args.masks):
        raise InputError("export", "nothing to export: give --nwb, --csv and/or --masks")

    results = load_results_file(args.results)
    est = results.estimates
    if est is None:
        raise InputError("results", "the file holds no CNMF components to export")
    session = Session.from_results(results)
    idx = np.arange(est.A.shape[1]) if args.all else session.accepted()
    if idx is None:
        idx = np.arange(est.A.shape[1])
    nwb_kw: dict[str, Any] = {}
    if args.nwb:
        nwb_kw = {
            "indicator": args.indicator,
            "location": args.location,
            "mask_type": args.mask_type,
        }
        if args.description:
            nwb_kw["session_description"] = args.description
        if args.session_start:
            nwb_kw["session_start_time"] = _parse_time(args.session_start)
    written = session.export(
        nwb=args.nwb, csv=args.csv, masks=args.masks, all_components=args.all, **nwb_kw
    )
    print(
        f"exported {len(idx)} of {est.A.shape[1]} components: " + ", ".join(str(w) for w in written)
    )
    return 0


def _parse_time(text: str) -> Any:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            "--session-start",
            f"expected an ISO date and time such as 2024-05-01T14:30:00+02:00, got {text!r}",
        ) from None


def batch_table(batch: Any) -> str:
    """Return the batch as a text table: name, status, elapsed, summary or error."""
    rows = [("name", "status", "elapsed", "summary")]
    for item in batch:
        el = item.elapsed
        rows.append(
            (
                item.name,
                item.status,
                "" if el is None else f"{el:.1f} s",
                item.error if item.status in ("failed", "cancelled") else item.summary,
            )
        )
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:3], width, strict=True)) + "  " + r[3] for r in rows
    )


def _parse_vary(items: Sequence[str] | None) -> dict[str, list]:
    grid: dict[str, list] = {}
    for name, value in _parse_set(items).items():
        if not isinstance(value, (list, tuple)) or not value:
            raise InputError("--vary", f"expected NAME=[value, value, ...], got {name}={value!r}")
        grid[name] = list(value)
    return grid


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import Batch

    batch = Batch(args.batchfile)
    if args.clear_cache:
        freed = batch.cache.clear()
        print(f"motion cache cleared: {freed / 1e6:.1f} MB freed ({batch.cache.root})")
    if args.add:
        if not args.movie:
            raise InputError("--movie", "--add needs the movie file(s) of the new item")
        params = _load_params(
            args.params, _with_backend(_parse_set(args.set), args.backend, args.memory_limit)
        )
        steps = _parse_steps(args.steps)
        grid = _parse_vary(args.vary)
        added = (
            batch.add_variants(args.add, args.movie, params, grid, steps)
            if grid
            else [batch.add(args.add, args.movie, params, steps)]
        )
        print(f"added {len(added)} item(s): " + ", ".join(i.name for i in added))
    elif args.movie or args.vary or args.set or args.params or args.backend or args.memory_limit:
        raise InputError(
            "--add", "--movie/--params/--set/--vary describe a new item: give its name with --add"
        )
    if args.retry_failed:
        for item in batch:
            if item.status in ("failed", "cancelled"):
                batch.requeue(item.name)
    if args.list or ((args.add or args.clear_cache) and not args.run):
        print(batch_table(batch))
        return 0
    queued = batch.queued()
    if not queued:
        print(batch_table(batch))
        print(
            "nothing queued"
            + ("" if not len(batch) else " (use --retry-failed to re-run failed items)")
        )
        return 0
    print(
        f"running {len(queued)} item(s)"
        + (f" on Dask ({args.scheduler})" if args.scheduler else ""),
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    progress = make_progress(quiet=args.quiet)
    try:
        counts = batch.run(scheduler=args.scheduler, n_parallel=args.parallel, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        print(
            f"\n{PROG}: interrupted; finished items are kept, the interrupted item is queued again: "
            f"run `{PROG} batch {args.batchfile}` to resume",
            file=sys.stderr,
        )
        return 130
    progress.close()
    print(batch_table(batch))
    print(
        f"{sum(counts.values())} item(s) in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    )
    print(f"results: {batch.results_dir}")
    return 1 if counts.get("failed") else 0


def _cmd_params(args: argparse.Namespace) -> int:
    from ..engine.params import GROUPS_OF, close_matches
    from ..engine.schema import SPEC_BY_NAME, SPECS, describe, markdown

    if args.markdown:
        print(markdown(), end="")
        return 0
    if args.name:
        spec = SPEC_BY_NAME.get(args.name)
        if spec is None:
            if args.name in GROUPS_OF:
                from ..engine.params import ALL_GROUPS

                group = GROUPS_OF[args.name][0]
                print(
                    f"{args.name}  [{', '.join(GROUPS_OF[args.name])}]\n  default: "
                    f"{ALL_GROUPS[group][args.name]!r}\n  a CaImAn parameter the native engine passes on "
                    "or ignores; see CaImAn's CNMFParams documentation"
                )
                return 0
            hits = close_matches(args.name)
            raise InputError(
                "params",
                f"unknown parameter {args.name!r}"
                + (f"; did you mean {', '.join(repr(h) for h in hits)}?" if hits else ""),
            )
        print(describe(spec))
        return 0
    print("\n\n".join(describe(s) for s in SPECS))
    print(
        f"\n(per-axis values: CaImAn's order rows, cols[, planes]; `{PROG} params NAME` for one; "
        f"any other CaImAn name is accepted too)"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.headless:
        from .demo import run_headless_demo

        print(run_headless_demo(args.output, quiet=args.quiet))
        return 0
    from .demo import open_demo_viewer

    open_demo_viewer()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``napari-caiman`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Calcium-imaging analysis (CaImAn-style) headless or in napari."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run_p = sub.add_parser(
        "run",
        help="run pipeline steps on a movie and save the results",
        epilog="The summary prints frame shapes in array order ((Z,) Y, X), as numpy and napari index them; "
        "CaImAn's dims and per-axis parameters (max_shifts, gSig ...) are (rows, cols[, planes]) = "
        "(y, x[, z]). Crispness is the sharpness of the mean image (norm of its gradient): motion "
        "correction should raise it. Parameters: `napari-caiman params`.",
    )
    run_p.add_argument(
        "movie", nargs="+", help="movie file(s) (.tif/.tiff/.npy/.h5/.hdf5) or a folder of TIFFs"
    )
    run_p.add_argument(
        "--steps",
        default="motion",
        help="comma-separated steps: motion, cnmf, evaluate (e.g. motion,cnmf,evaluate)",
    )
    run_p.add_argument("-o", "--output", required=True, help="results file (.hdf5)")
    run_p.add_argument("--params", help="JSON file: flat dict of CaImAn parameter names")
    run_p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="override one parameter, e.g. --set pw_rigid=True",
    )
    run_p.add_argument("--save-movie", help="write the motion-corrected movie here (.tif or .npy)")
    run_p.add_argument(
        "--backend",
        choices=("native", "caiman"),
        help="native (default) or caiman: run CaImAn's own code (installed separately, docs/caiman.md)",
    )
    run_p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files (-o, --save-movie); by default they are kept and the run refused",
    )
    run_p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="memory budget of the run, e.g. 4GB or 512MiB (default: half the RAM available "
        "at start); what does not fit goes to disk, a run that cannot fit is refused before it starts",
    )
    run_p.add_argument(
        "--scheduler",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run this movie's motion chunks, CNMF patches and evaluation chunks on Dask: a "
        "scheduler address, or no value for a local cluster of worker processes",
    )
    run_p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    run_p.set_defaults(func=_cmd_run)

    ev_p = sub.add_parser(
        "evaluate",
        help="re-apply evaluation thresholds (or recompute metrics), keeping manual decisions",
    )
    ev_p.add_argument("results", help="results file (.hdf5)")
    ev_p.add_argument(
        "--movie", nargs="+", help="the (motion-corrected) movie, to recompute the metrics"
    )
    ev_p.add_argument("--params", help="JSON file of parameters (e.g. new min_SNR, rval_thr)")
    ev_p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="override one parameter, e.g. --set min_SNR=3",
    )
    ev_p.add_argument(
        "-o", "--output", help="write here instead of updating the results file in place"
    )
    ev_p.add_argument(
        "--force",
        action="store_true",
        help="use --movie even when its content differs from the movie recorded in the results",
    )
    ev_p.add_argument("-q", "--quiet", action="store_true")
    ev_p.set_defaults(func=_cmd_evaluate)

    tc_p = sub.add_parser(
        "train-classifier", help="learn accept/reject from the manual decisions in results files"
    )
    tc_p.add_argument("results", nargs="+", help="curated results file(s) (.hdf5)")
    tc_p.add_argument("-o", "--output", required=True, help="model file (.json)")
    tc_p.set_defaults(func=_cmd_train_classifier)

    ex_p = sub.add_parser(
        "export", help="export accepted components to NWB, CSV (traces) and/or TIFF (masks)"
    )
    ex_p.add_argument("results", help="results file (.hdf5)")
    ex_p.add_argument(
        "--nwb", help="NWB file (pynwb ophys: PlaneSegmentation, RoiResponseSeries, DfOverF)"
    )
    ex_p.add_argument("--csv", help="CSV of the denoised traces C, one column per component")
    ex_p.add_argument("--masks", help="TIFF stack of the footprints")
    ex_p.add_argument(
        "--all", action="store_true", help="export every component, not only the accepted ones"
    )
    ex_p.add_argument(
        "--indicator", default="unknown", help="NWB: the calcium indicator, e.g. GCaMP6f"
    )
    ex_p.add_argument(
        "--location", default="unknown", help="NWB: the imaged brain area, e.g. 'V1 layer 2/3'"
    )
    ex_p.add_argument(
        "--session-start",
        metavar="ISO_TIME",
        help="NWB: when the session started, e.g. 2024-05-01T14:30:00+02:00 (default: now)",
    )
    ex_p.add_argument("--description", help="NWB: session description")
    ex_p.add_argument(
        "--mask-type",
        choices=("pixel", "image"),
        default="pixel",
        help="NWB footprints: sparse pixel (voxel) masks (default, small) or dense image masks",
    )
    ex_p.set_defaults(func=_cmd_export)

    b_p = sub.add_parser(
        "batch", help="add items to a batch file and/or run its queued items (locally or on Dask)"
    )
    b_p.add_argument("batchfile", help="batch file (.json; created if missing)")
    b_p.add_argument(
        "--add",
        metavar="NAME",
        help="add an item with this name (with --movie, --params, --set, --vary)",
    )
    b_p.add_argument("--movie", nargs="+", help="movie file(s) or folder of the new item")
    b_p.add_argument(
        "--steps", default="motion,cnmf,evaluate", help="steps of the new item (default: all)"
    )
    b_p.add_argument(
        "--params", help="JSON file of parameters for the new item (flat CaImAn names)"
    )
    b_p.add_argument(
        "--set", action="append", metavar="NAME=VALUE", help="one parameter of the new item"
    )
    b_p.add_argument(
        "--vary",
        action="append",
        metavar="NAME=[V1,V2,...]",
        help="add one item per value (several --vary: every combination)",
    )
    b_p.add_argument("--backend", choices=("native", "caiman"), help="backend of the new item(s)")
    b_p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="memory budget of the new item(s), e.g. 4GB or 512MiB (default: half the RAM "
        "available at start); what does not fit goes to disk, a run that cannot fit is refused before it starts",
    )
    b_p.add_argument("--run", action="store_true", help="after --add, run the queue too")
    b_p.add_argument(
        "--list", action="store_true", help="print the items and their status, run nothing"
    )
    b_p.add_argument(
        "--retry-failed", action="store_true", help="queue failed and cancelled items again"
    )
    b_p.add_argument(
        "--scheduler",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Dask: a scheduler address, or no value for a local cluster",
    )
    b_p.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="items at once on Dask (default: number of workers)",
    )
    b_p.add_argument(
        "--clear-cache", action="store_true", help="delete the cached motion-corrected movies"
    )
    b_p.add_argument("-q", "--quiet", action="store_true")
    b_p.set_defaults(func=_cmd_batch)

    pa_p = sub.add_parser(
        "params", help="the parameter reference: group, default, valid values and meaning"
    )
    pa_p.add_argument("name", nargs="?", help="one parameter (CaImAn name), e.g. max_shifts")
    pa_p.add_argument(
        "--markdown",
        action="store_true",
        help="print the reference as a Markdown page (docs/parameters.md)",
    )
    pa_p.set_defaults(func=_cmd_params)

    demo_p = sub.add_parser(
        "demo", help="open napari with a synthetic demo movie, or run the pipeline on it headless"
    )
    demo_p.add_argument(
        "--headless", action="store_true", help="no window: run the pipeline and print a summary"
    )
    demo_p.add_argument(
        "-o", "--output", default="napari_caiman_demo", help="output folder for --headless"
    )
    demo_p.add_argument("-q", "--quiet", action="store_true")
    demo_p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-caiman`` command. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, StateError) as exc:  # the user's to fix: exit code 2
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except NapariCaimanError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
