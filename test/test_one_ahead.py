"""gpu_check's stream of frames one ahead (the next frame's measurement in a thread while the previous one is
finished): the same products as Pipeline.run, in order, and the overlap really happening. Pipeline.measure and
Pipeline.finish, the split it rests on, are run's two halves."""

from __future__ import annotations

import threading

import numpy as np
from test_model import tiny_model
from test_pipeline import lidar_frame

from depth_panoptic_ros.bench.gpu_check import one_ahead
from depth_panoptic_ros.pipeline import Pipeline


def test_one_ahead_gives_run_s_products_in_order() -> None:
    pipeline = Pipeline(model=tiny_model())
    frames = [lidar_frame(96, 160), lidar_frame(64, 128), lidar_frame(96, 160)]
    streamed = list(one_ahead(pipeline, frames))
    assert len(streamed) == 3
    for frame, result in zip(frames, streamed, strict=True):
        products = pipeline.run(frame)
        np.testing.assert_array_equal(result.depth, products.depth)
        np.testing.assert_array_equal(result.panoptic.ids, products.panoptic.ids)
        np.testing.assert_array_equal(result.cloud.xyz, products.cloud.xyz)
        assert set(result.timings_ms) == set(products.timings_ms)


def test_the_next_frame_is_measured_while_the_previous_one_is_finished(monkeypatch) -> None:
    """finish(frame 0) waits until measure(frame 1) has run: without the overlap it would time out."""
    pipeline = Pipeline()
    measured = threading.Event()
    measure, finish = pipeline.measure, pipeline.finish
    order: list[str] = []

    def measuring(frame):
        products = measure(frame)
        if frame.rgb.shape[0] == 64:
            measured.set()
        return products

    def finishing(frame, products, outputs=None):
        if frame.rgb.shape[0] == 96:
            order.append("frame 1 measured" if measured.wait(timeout=30) else "timed out")
        return finish(frame, products, {"depth"})

    monkeypatch.setattr(pipeline, "measure", measuring)
    monkeypatch.setattr(pipeline, "finish", finishing)
    first, last = one_ahead(pipeline, [lidar_frame(96, 160), lidar_frame(64, 128)])
    assert order == ["frame 1 measured"]
    assert first.depth.shape == (96, 160) and last.depth.shape == (64, 128)
