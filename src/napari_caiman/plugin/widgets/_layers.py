"""Putting layer data tuples into a viewer (main thread only), shared by the step widgets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels, Layer

if TYPE_CHECKING:
    import napari


def upsert_layer(
    viewer: napari.viewer.Viewer, data: Any, meta: dict[str, Any], layer_type: str
) -> Layer:
    """Add a layer, or update the layer of the same name and type in place.

    Images (of the same dimensionality and RGB-ness) and Labels keep their
    visibility and place in the layer list: data, geometry, contrast limits,
    colormap, features and metadata are updated. Replacing a layer costs
    napari far more (its visuals are rebuilt and a garbage collection runs
    on every removal: ~0.5 s here), so only other layer types are replaced,
    at the same position.
    """
    name = meta["name"]
    if name in viewer.layers:
        old = viewer.layers[name]
        same_image = (
            layer_type == "image"
            and isinstance(old, Image)
            and bool(old.rgb) == bool(meta.get("rgb", False))
            and old.ndim == np.ndim(data) - int(bool(meta.get("rgb", False)))
        )
        same_labels = (
            layer_type == "labels" and isinstance(old, Labels) and old.ndim == np.ndim(data)
        )
        if same_image or same_labels:
            first = ("colormap", "features") if same_labels else ()  # new labels drawn with them
            for key in first:
                if key in meta:
                    setattr(old, key, meta[key])
            old.data = data
            for key in ("scale", "translate", "contrast_limits", "colormap", "metadata"):
                if key in meta and key not in first:
                    setattr(old, key, meta[key])
            return old
        index = viewer.layers.index(old)
        visible = old.visible
        viewer.layers.remove(old)
        new = Layer.create(data, {**meta, "visible": visible}, layer_type)
        viewer.layers.insert(index, new)
        return new
    layer = Layer.create(data, meta, layer_type)
    viewer.add_layer(layer)
    return layer


#: Result layers made only when the user asks for them (the Evaluation dock's "layers" row:
#: Footprints, Denoised, Residual).
ON_REQUEST = ("cnmf footprints", "cnmf denoised", "cnmf residual")


def with_shown_footprints(
    viewer: napari.viewer.Viewer, tuples: list, kinds: tuple[str, ...] = ON_REQUEST
) -> list:
    """Return a result's layer tuples without those of ``kinds`` the viewer does not show.

    The footprints Labels and the lazy denoised and residual movies are made when the user asks
    for them (the Evaluation dock's Footprints / Denoised / Residual buttons): the clicks, hover
    and selection work from the contours, and each layer costs napari 0.3-1 s of the window's
    time to add (its visuals, controls, and a Labels' polygon and brush overlays). Once there,
    a re-run or refit updates it in place. A refit or hand edit also passes ``"summary"``: its
    correlation image is the one already shown (the Motion dock's, maybe).
    """
    return [
        t
        for t in tuples
        if t[1].get("metadata", {}).get("napari_caiman", {}).get("kind") not in kinds
        or t[1]["name"] in viewer.layers
    ]


def movie_layer_choices(viewer: napari.viewer.Viewer) -> list[tuple[str, Layer]]:
    """``(name, layer)`` of every Image layer that can be a step's input movie.

    (T, Y, X) or (T, Z, Y, X), not RGB or multiscale, and not one of our own derived images (mean,
    correlation, denoised ...), in layer-list order.
    """
    out = []
    for layer in viewer.layers:
        if (
            not isinstance(layer, Image)
            or layer.rgb
            or layer.multiscale
            or layer.ndim not in (3, 4)
        ):
            continue
        kind = layer.metadata.get("napari_caiman", {}).get("kind", "movie")
        if kind in ("movie", "motion corrected"):
            out.append((layer.name, layer))
    return out


def unwrap(obj: Any) -> Any:
    """Return the object behind napari's ``PublicOnlyProxy``.

    A plugin's viewer is a proxy, and each ``viewer.layers[name]`` (or iteration) returns a *new*
    proxy, so identity tests between them never hold. Compare layers by name, or unwrapped.
    """
    return getattr(obj, "__wrapped__", obj)


def same_layer(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` (layers or proxies of them) are one layer."""
    return a is not None and b is not None and unwrap(a) is unwrap(b)


def choose_by_name(combo: Any, name: str | None) -> bool:
    """Set a layer ComboBox to its choice named ``name``; False when it has none."""
    if name is None:
        return False
    combo.reset_choices()
    for choice in combo.choices:
        if getattr(choice, "name", None) == name:
            combo.value = choice
            return True
    return False


def select_active_movie(viewer: napari.viewer.Viewer, combo: Any) -> None:
    """Set a movie ComboBox to the viewer's active layer if that is a valid movie."""
    active = viewer.layers.selection.active
    if active is not None and any(
        same_layer(layer, active) for _, layer in movie_layer_choices(viewer)
    ):
        choose_by_name(combo, active.name)
