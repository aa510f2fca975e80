"""A component classifier that learns from curation (accept / reject decisions).

What suite2p's "add to classifier" does, and what CaImAn's CNN does without
being installable here: a logistic regression (scikit-learn) on per-component
features computed from the evaluation metrics and the estimates,

``log SNR``, ``r-value``, ``solidity``, ``pieces``, ``log area ratio``,
``log size``, ``trace skewness``, ``fraction of frames active``,

trained on the components a user accepted or rejected by hand and applied to
the others (manual decisions always win).  A model is a small JSON file
(feature names, standardization, coefficients; no pickle, nothing executable)
that can be applied to other sessions and batches:

    >>> model = train_classifier([(metrics, estimates, labels)])   # doctest: +SKIP
    >>> model.save("my_cells.json")                                 # doctest: +SKIP
    >>> p = Classifier.load("my_cells.json").predict(metrics, estimates)  # doctest: +SKIP

With the parameter ``classifier`` (our own group, a model path) the
evaluation stores each component's probability (``Metrics.classifier_prob``)
and :func:`~.evaluation.apply_thresholds` uses ``p >= min_classifier_prob``
in place of the SNR / r-value test (the shape tests and ``*_lowest`` limits
still apply).  ``default_model_path()`` is the model shipped with the plugin
(see ``docs/classifier.md`` for its training data and cross-validated accuracy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "FEATURES",
    "component_features",
    "Classifier",
    "train_classifier",
    "default_model_path",
    "labels_from_curation",
]

FEATURES = (
    "log_snr",
    "r_value",
    "solidity",
    "n_pieces",
    "log_area_ratio",
    "log_size",
    "skewness",
    "active",
)
FORMAT = "napari-caiman-classifier"


def default_model_path() -> Path:
    """Return the model shipped with the plugin."""
    return Path(__file__).resolve().parent / "default_classifier.json"


def _skew(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((x**2).mean(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (x**3).mean(axis=1) / np.where(sd > 0, sd, 1) ** 3
    return np.where(sd > 0, s, 0.0)


def component_features(metrics: Any, estimates: Any, gSig: Any = (4, 4)) -> np.ndarray:
    """Return the (K, len(FEATURES)) features of every component.

    Metrics from :mod:`.evaluation`; ``gSig`` only for metrics without shape fields.
    """
    from .shapes import shape_metrics

    K = metrics.n_components
    snr = np.nan_to_num(np.asarray(metrics.SNR_comp, float), nan=0.0)
    r = np.nan_to_num(np.asarray(metrics.r_values, float), nan=0.0)
    if metrics.solidity is None or metrics.n_pieces is None or metrics.area_ratio is None:
        sm = shape_metrics(estimates.A, estimates.dims, gSig)
        sol, pcs, ar = sm.solidity, sm.n_pieces, sm.area_ratio
    else:
        sol, pcs, ar = (
            np.asarray(v, float) for v in (metrics.solidity, metrics.n_pieces, metrics.area_ratio)
        )
    size = np.asarray(metrics.size, float)
    C = np.asarray(estimates.C, float)
    raw = C + np.asarray(estimates.YrA, float) if estimates.YrA is not None else C
    skew = _skew(raw) if K else np.zeros(0)
    S = np.asarray(estimates.S, float) if estimates.S is not None and np.size(estimates.S) else C
    active = (
        (S > 1e-6 * np.maximum(S.max(axis=1, keepdims=True), 1e-30)).mean(axis=1)
        if K
        else np.zeros(0)
    )
    X = np.stack(
        [
            np.log1p(np.maximum(snr, 0)),
            r,
            sol,
            np.minimum(pcs, 5),
            np.log(np.maximum(ar, 1e-3)),
            np.log1p(np.maximum(size, 0)),
            np.clip(skew, -5, 20),
            active,
        ],
        axis=1,
    )
    return np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass
class Classifier:
    """Standardized logistic regression: ``p = sigmoid(((x - mean) / scale) . coef + intercept)``."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    features: tuple[str, ...] = FEATURES
    info: dict | None = None

    def predict_features(self, X: np.ndarray) -> np.ndarray:
        """Return the probability that each row of ``X`` (K, n_features) is a cell."""
        X = np.asarray(X, float)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise InputError(
                "features", f"expected (K, {len(self.features)}) features, got {X.shape}"
            )
        z = ((X - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def predict(self, metrics: Any, estimates: Any, gSig: Any = (4, 4)) -> np.ndarray:
        """(K,) probability that each component is a cell."""
        return self.predict_features(component_features(metrics, estimates, gSig))

    def to_dict(self) -> dict:
        """Return the model as a JSON-ready dict (format, version, features, weights)."""
        return {
            "format": FORMAT,
            "version": 1,
            "kind": "logistic_regression",
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": float(self.intercept),
            "info": self.info or {},
        }

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` as JSON (atomically) and return the path."""
        from .atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        """Read a model saved by :meth:`save`; raise InputError for a missing or bad file."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError("classifier", f"no classifier file {str(path)!r}") from None
        except (OSError, ValueError) as exc:
            raise InputError(
                "classifier", f"{path.name} is not a classifier file ({exc})"
            ) from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError("classifier", f"{path.name} is not a napari-caiman classifier file")
        feats = tuple(d.get("features", ()))
        if feats != FEATURES:
            raise InputError(
                "classifier", f"{path.name} uses features {feats}, this version computes {FEATURES}"
            )
        try:
            arr = [np.asarray(d[k], float) for k in ("mean", "scale", "coef")]
            icpt = float(d["intercept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError("classifier", f"{path.name} is damaged ({exc})") from None
        if any(a.shape != (len(FEATURES),) for a in arr) or not all(
            np.isfinite(a).all() for a in arr
        ):
            raise InputError(
                "classifier", f"{path.name} is damaged (wrong sizes or non-finite values)"
            )
        return cls(
            arr[0], np.where(arr[1] > 0, arr[1], 1.0), arr[2], icpt, feats, d.get("info") or {}
        )


def labels_from_curation(manual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, y)``: the components with a manual decision and their labels (1 accepted, 0 rejected)."""
    m = np.asarray(manual)
    idx = np.flatnonzero(m != 0)
    return idx, (m[idx] > 0).astype(int)


def train_classifier(sessions: list, *, C: float = 1.0, info: dict | None = None) -> Classifier:
    """Train on ``[(metrics, estimates, labels), ...]``.

    ``labels`` is (K,) as a Curation's ``manual``: +1 accepted, -1 rejected, 0 (or NaN) undecided
    (ignored).

    Raises
    ------
    InputError
        Fewer than 2 decisions of each kind.
    """
    from sklearn.linear_model import LogisticRegression

    Xs, ys = [], []
    for metrics, estimates, labels in sessions:
        lab = np.asarray(labels, float).ravel()
        if lab.size != metrics.n_components:
            raise InputError("labels", f"{lab.size} labels for {metrics.n_components} components")
        X = component_features(metrics, estimates)
        sel = np.isfinite(lab) & (lab != 0)
        y = (lab[sel] > 0).astype(int)
        Xs.append(X[sel])
        ys.append(y)
    X = np.concatenate(Xs) if Xs else np.zeros((0, len(FEATURES)))
    y = np.concatenate(ys) if ys else np.zeros(0, int)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos < 2 or n_neg < 2:
        raise InputError(
            "labels",
            f"need at least 2 accepted and 2 rejected components to train, got "
            f"{n_pos} accepted and {n_neg} rejected",
        )
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale <= 1e-12] = 1.0
    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=1000)
    lr.fit((X - mean) / scale, y)
    meta = {"n_train": int(y.size), "n_accepted": n_pos, "n_rejected": n_neg, **(info or {})}
    return Classifier(
        mean, scale, lr.coef_.ravel().astype(float), float(lr.intercept_[0]), FEATURES, meta
    )
