"""A frame's products as files (`depth-panoptic infer`, `bag process --export`): depth.npy / depth.png,
points.ply, panoptic.png (16-bit ids) and its color overlay, instances.json and the instance depth view, and
the bird's-eye grid seen from above (forward up): bev.png (panoptic colors) and occupancy.png (map_server shades)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from depth_panoptic_ros.classes import ClassTable
    from depth_panoptic_ros.frame import SensorFrame
    from depth_panoptic_ros.pipeline import Products


def write_products(out: Path, frame: SensorFrame, products: Products, class_table: ClassTable | None) -> list[str]:
    """Writes every product that exists; returns the file names. Raises ValueError for ids a 16-bit PNG
    cannot hold."""
    import cv2

    from depth_panoptic_ros.data.images import write_rgb
    from depth_panoptic_ros.data.ply import write_ply
    from depth_panoptic_ros.products.bev_grid import occupancy_image, top_down
    from depth_panoptic_ros.products.depth_colormap import colorize_depth, depth_colormap_panoptic
    from depth_panoptic_ros.products.palette import colorize_panoptic, overlay_panoptic

    out.mkdir(parents=True, exist_ok=True)
    files = {"depth.npy": None, "depth.png": colorize_depth(products.depth)}
    np.save(out / "depth.npy", products.depth.astype(np.float32))
    if products.cloud is not None:
        write_ply(out / "points.ply", products.cloud)
        files["points.ply"] = None
    if products.panoptic is not None:
        ids = products.panoptic.ids
        if ids.max(initial=0) > np.iinfo(np.uint16).max:
            raise ValueError(f"panoptic ids up to {ids.max()} do not fit a 16-bit PNG")
        cv2.imwrite(str(out / "panoptic.png"), ids.astype(np.uint16))
        files["panoptic.png"] = None
        files["panoptic_color.png"] = overlay_panoptic(frame.rgb, ids, class_table)
    if products.grid is not None:
        files["bev.png"] = colorize_panoptic(top_down(products.grid.ids), class_table)
        files["occupancy.png"] = occupancy_image(top_down(products.grid.occupancy))
    if products.instances is not None:
        records = products.instances.to_records(class_table)
        (out / "instances.json").write_text(json.dumps(records, indent=1, allow_nan=False))
        files["instances.json"] = None
        files["depth_color.png"] = depth_colormap_panoptic(ids, products.instances, class_table, rgb=frame.rgb)
    for name, image in files.items():
        if image is not None:
            write_rgb(out / name, image)
    return list(files)
