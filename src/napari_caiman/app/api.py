"""The public headless API: run the pipeline on movie files, re-evaluate a results file.

    from napari_caiman import run_pipeline
    results = run_pipeline(["movie.tif"], steps=["motion", "cnmf", "evaluate"], output="results.hdf5")

The CLI (:mod:`.cli`), the demo (:mod:`.demo`) and scripts call these.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..engine.errors import InputError

__all__ = ["run_pipeline", "evaluate_results", "check_movie_matches", "load_results_file"]


def run_pipeline(
    movie_paths: Sequence[str],
    *,
    steps: Sequence[str] = ("motion",),
    output: str | Path,
    params: Any = None,
    save_movie: str | Path | None = None,
    progress: Any = None,
    scheduler: str | None = None,
    memory_limit: Any = None,
) -> Any:
    """Run the pipeline headless: open the movie, run ``steps``, save results.

    Parameters
    ----------
    movie_paths : list of str
        One movie file, several files forming one movie, or a folder of TIFFs.
    steps : sequence of str
        Pipeline steps (see :data:`napari_caiman.engine.pipeline.STEPS`).
    output : path
        Results HDF5 file (written atomically).
    params : CaimanParams, optional
    save_movie : path, optional
        Where to write the motion-corrected movie (.tif or .npy).
    progress : callable, optional
        Called with each :class:`Progress`.
    scheduler : str, optional
        Run the motion-correction chunks, CNMF patches and evaluation chunks of
        the movie on Dask: a scheduler address, or ``"local"`` for a
        ``LocalCluster`` of worker processes (closed at the end).
    memory_limit : int or str, optional
        Memory budget (``"4GB"``); overrides ``params["memory_limit"]``
        (default: half the RAM available at start).

    Returns
    -------
    Results
    """
    from ..engine.progress import run
    from .runs import iter_pipeline

    if memory_limit is not None:
        from ..engine.params import CaimanParams

        params = (params.copy() if params is not None else CaimanParams.defaults()).update(
            {"memory_limit": memory_limit}
        )
    if scheduler is None:
        return run(
            iter_pipeline(
                movie_paths, steps=steps, output=output, params=params, save_movie=save_movie
            ),
            progress,
        )
    from .dask_batch import connect

    client, cluster = connect(scheduler)
    try:
        return run(
            iter_pipeline(
                movie_paths,
                steps=steps,
                output=output,
                params=params,
                save_movie=save_movie,
                executor=client,
            ),
            progress,
        )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def load_results_file(path: str) -> Any:
    """Load a results file named on the command line (``.hdf5``/``.h5``), else an InputError."""
    from ..io.results_file import load_results

    if not str(path).lower().endswith((".hdf5", ".h5")):
        raise InputError("results", f"expected a results file (.hdf5), got {path!r}")
    return load_results(path)


def check_movie_matches(results: Any, movie_path: Sequence[str]) -> str | None:
    """Check that ``movie_path`` is the movie the results were computed on.

    The check uses the content hashes the results' provenance records: the saved motion-corrected
    movie when the run corrected motion, else its input.

    Returns a note when the results record nothing to check against, else None.

    Raises
    ------
    InputError
        (``--movie``) The movie's content differs from the recorded one.
    """
    from ..io.provenance import content_matches, recorded_movie

    which, recorded = recorded_movie(results.provenance)
    if not recorded:
        what = which
        if which.startswith("motion"):
            what += " (it was not saved with --save-movie)"
        return f"the results record no content hash of the {what}; the movie was not checked"
    want = [r.get("content_sha256") for r in recorded]
    if not content_matches(movie_path[0] if len(movie_path) == 1 else list(movie_path), want):
        names = ", ".join(Path(r.get("path", "?")).name for r in recorded)
        raise InputError(
            "--movie",
            f"this is not the movie these results were computed on: its content differs "
            f"from the recorded {which} ({names}); give that movie, or --force to "
            "evaluate on this one anyway",
        )
    return None


def evaluate_results(
    results: Any,
    *,
    movie_path: Sequence[str] | None = None,
    overrides: dict[str, Any] | None = None,
    progress: Any = None,
    force: bool = False,
) -> Any:
    """Re-evaluate a loaded results file.

    New thresholds (``overrides``, CaImAn names) re-applied to stored metrics, or metrics recomputed
    from the movie. Manual decisions (curation) are kept. The movie must be the one the results were
    computed on (content hash in the provenance; see :func:`check_movie_matches`) unless ``force``.
    Sets ``results.last_timings`` to the time the recomputation took.
    """
    from ..engine.evaluation import Metrics
    from ..engine.progress import run
    from ..io.movie import open_movie
    from .session import Session

    if results.estimates is None:
        raise InputError("results", "the file holds no CNMF components to evaluate")
    movie = None
    if movie_path:
        source = movie_path[0] if len(movie_path) == 1 else list(movie_path)
        params = results.params.copy().update(overrides) if overrides else results.params
        movie = open_movie(source, var_name_hdf5=params["var_name_hdf5"])
        if tuple(movie.shape[1:]) != tuple(results.dims):
            raise InputError(
                "--movie",
                f"frame shape {tuple(movie.shape[1:])} does not match the results' "
                f"{tuple(results.dims)} (array order)",
            )
        note = None if force else check_movie_matches(results, movie_path)
        if note:
            print(f"napari-caiman: note: {note}", file=sys.stderr)
    elif results.metrics is None:
        raise InputError(
            "--movie", "the results file stores no quality metrics; give the movie to compute them"
        )
    # the movie given is the one CNMF read (the corrected one when motion was corrected);
    # the session applies the motion border rule to it
    session = Session.from_results(results, movie)
    if overrides:
        session.update_params(overrides)
    if movie is not None:
        t0 = time.perf_counter()
        run(session.iter_evaluate(), progress)
        results.last_timings = {"evaluate": time.perf_counter() - t0}
    assert isinstance(session.metrics, Metrics)
    if (
        overrides and "classifier" in overrides
    ):  # a classifier learnt from curation, on the stored metrics
        from ..engine.evaluation import apply_classifier

        if overrides["classifier"] in (None, "", False):
            session.metrics.classifier_prob = None
        else:
            apply_classifier(session.metrics, session.estimates, session.params)
    session.rethreshold()
    results.params, results.metrics, results.F_dff = session.params, session.metrics, session.F_dff
    return results
