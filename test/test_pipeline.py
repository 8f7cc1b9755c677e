"""SensorFrame -> Products: the stages, output selection, and the errors front ends turn into messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depth_panoptic_ros.bench.geometry import GROUND_T_CAM, T_CAM_LIDAR, lidar_sweep
from depth_panoptic_ros.frame import SensorFrame
from depth_panoptic_ros.geometry.camera import CameraModel
from depth_panoptic_ros.geometry.lidar import project_points
from depth_panoptic_ros.pipeline import OUTPUTS, Pipeline, PipelineConfig, load_pipeline
from depth_panoptic_ros.products.bev_grid import BevProjector


def lidar_frame(height: int = 96, width: int = 160) -> SensorFrame:
    f = 721.5 * width / 1242
    camera = CameraModel.from_matrices(width, height, [[f, 0, width / 2], [0, f, height * 0.46], [0, 0, 1]])
    rgb = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return SensorFrame(rgb=rgb, camera=camera, points=lidar_sweep(), T_cam_lidar=T_CAM_LIDAR)


def test_depth_only_pipeline_keeps_lidar_depth_and_skips_unrequested_outputs() -> None:
    frame = lidar_frame(160, 480)  # wide enough that scan lines are sparse, as on a real camera
    products = Pipeline().run(frame, outputs={"depth"})
    expected = project_points(frame.points, frame.T_cam_lidar, frame.camera, min_depth=0.5).depth
    measured = expected > 0
    assert measured.sum() > 100
    np.testing.assert_array_equal(products.sparse_depth, expected)
    # completion keeps (or barely moves) measured depth and fills around it
    np.testing.assert_allclose(products.depth[measured], expected[measured], rtol=0.02)
    first_row = np.flatnonzero(measured.any(axis=1))[0]
    assert measured[first_row:].mean() < 0.6  # the scan lines leave gaps ...
    assert (products.depth[first_row:] > 0).mean() > 0.99  # ... that completion fills
    assert products.cloud is None and products.instances is None and products.panoptic is None
    assert set(products.timings_ms) == {"sparse_depth", "completion"}


def test_cloud_without_model_is_unlabeled_and_matches_depth() -> None:
    frame = lidar_frame()
    cfg = PipelineConfig(cloud=PipelineConfig().cloud.__class__(stride=1, max_range=1000.0, organized=True))
    products = Pipeline(cfg).run(frame, outputs={"cloud"})
    cloud = products.cloud
    assert cloud.xyz.shape == (96, 160, 3)
    valid = products.depth > 0
    np.testing.assert_array_equal(np.isfinite(cloud.xyz[..., 2]), valid)
    np.testing.assert_allclose(cloud.xyz[..., 2][valid], products.depth[valid])
    assert (cloud.label == 0).all() and (cloud.instance == 0).all()
    np.testing.assert_array_equal(cloud.rgb, frame.rgb)


def test_with_model_every_product_is_consistent() -> None:
    from test_model import tiny_model

    frame = lidar_frame()
    frame.ground_T_camera = GROUND_T_CAM
    pipeline = Pipeline(model=tiny_model())
    products = pipeline.run(frame, outputs=OUTPUTS)
    ids = products.panoptic.ids
    assert ids.shape == frame.rgb.shape[:2]
    assert sorted(products.instances.panoptic_id.tolist()) == sorted(set(np.unique(ids).tolist()) - {0})
    labeled = products.cloud.instance != 0
    assert labeled.any()
    np.testing.assert_array_equal(products.cloud.label, products.cloud.instance // 1000)
    assert {"network", "instance_depth", "cloud", "grid"} <= set(products.timings_ms)
    # the grid is the projection of this very cloud, also when the cloud itself is not asked for
    expected = BevProjector(pipeline.config.grid, pipeline.class_table)(products.cloud, GROUND_T_CAM)
    np.testing.assert_array_equal(products.grid.occupancy, expected.occupancy)
    np.testing.assert_array_equal(products.grid.ids, expected.ids)
    assert (products.grid.occupancy != -1).any()
    alone = pipeline.run(frame, outputs={"grid"})
    assert alone.cloud is None and np.array_equal(alone.grid.ids, expected.ids)
    frame.ground_T_camera = None  # no ground frame, no grid (and no cloud built for it)
    assert pipeline.run(frame, outputs={"grid"}).grid is None


def test_a_ground_transform_set_after_measure_checks_things_as_one_set_before() -> None:
    """A sweep that hits only a wall shows no ground: measure leaves the thing check out, and the transform a front
    end looks up only then gives the very check that measure builds from a transform set before."""
    from test_model import tiny_model

    from depth_panoptic_ros.geometry.ground import GroundPlane

    frame = lidar_frame()
    frame.points = lidar_sweep(beams=32, azimuths=720, height=1e3, wall=15.0)
    pipeline = Pipeline(model=tiny_model())
    assert pipeline.checks_things({"panoptic"}) and not pipeline.checks_things({"depth"})
    late = pipeline.measure(frame, {"panoptic"})
    assert late.ground is None and late.check is None
    frame.ground_T_camera = GROUND_T_CAM
    pipeline.check_against_transform(frame, late)
    early = pipeline.measure(frame, {"panoptic"})
    plane = GroundPlane.from_transform(GROUND_T_CAM)
    for products in (late, early):
        np.testing.assert_array_equal(products.ground.normal, plane.normal)
        assert products.ground.offset == plane.offset
    assert np.isfinite(late.check.heights).mean() > 0.5
    np.testing.assert_array_equal(late.check.heights, early.check.heights)
    np.testing.assert_array_equal(late.check.depth, early.check.depth)
    assert {"ground", "ground_transform"} <= set(late.timings_ms)
    finished = pipeline.finish(frame, late, {"panoptic"})
    np.testing.assert_array_equal(finished.panoptic.ids, pipeline.finish(frame, early, {"panoptic"}).panoptic.ids)


def test_the_served_depth_is_the_classical_one_unless_learned_depth_is_on() -> None:
    from test_model import tiny_model

    model = tiny_model()  # untrained, its completion returns the classical depth: make it differ
    predict = model.predict
    model.predict = lambda rgb, sparse, classical, segment=True, return_depth=True, check=None: (
        classical + 1 if return_depth else None,
        predict(rgb, sparse, classical)[1],
    )
    frame = lidar_frame()
    organized = PipelineConfig().cloud.__class__(stride=1, max_range=1000.0, organized=True)
    served = Pipeline(PipelineConfig(cloud=organized), model)
    products = served.run(frame, outputs={"depth", "cloud"})
    np.testing.assert_array_equal(products.depth, products.classical_depth)
    assert products.learned_depth is None  # neither served nor asked for: not copied back
    asked = served.run(frame, outputs={"depth", "learned_depth"})
    np.testing.assert_array_equal(asked.learned_depth, asked.classical_depth + 1)
    np.testing.assert_array_equal(asked.depth, asked.classical_depth)
    valid = products.depth > 0
    np.testing.assert_allclose(products.cloud.xyz[..., 2][valid], products.depth[valid], rtol=1e-6)
    assert "learned_depth: false" in served.depth_source and "no model" in Pipeline().depth_source
    learned = Pipeline(PipelineConfig(learned_depth=True), model)
    products = learned.run(frame, outputs={"depth"})
    np.testing.assert_array_equal(products.depth, products.learned_depth)
    assert "learned completion" in learned.depth_source


def test_the_networks_run_only_for_outputs_that_consume_them() -> None:
    from test_model import tiny_model

    model, calls = tiny_model(), []
    predict = model.predict
    model.predict = lambda *args, **kwargs: (
        calls.append((kwargs.get("segment", True), kwargs.get("return_depth", True))) or predict(*args, **kwargs)
    )
    served, frame = Pipeline(PipelineConfig(), model), lidar_frame()
    products = served.run(frame, outputs={"depth"})  # classical depth served: nothing reads the networks
    assert calls == [] and products.learned_depth is None and "network" not in products.timings_ms
    np.testing.assert_array_equal(products.depth, products.classical_depth)
    assert served.run(frame, outputs={"depth", "learned_depth"}).learned_depth is not None
    assert served.run(frame, outputs={"instances"}).learned_depth is None
    Pipeline(PipelineConfig(learned_depth=True), model).run(frame, outputs={"depth"})
    # (segment, return_depth): the learned depth comes back only when served or asked for
    assert calls == [(False, True), (True, False), (False, True)]


def test_a_gpu_models_instance_statistics_are_computed_from_its_device_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU model the result has no device ids and the host kernel runs; a result that carries them (a GPU
    model's; here a CPU tensor stands in) gets its statistics computed from them, with the same table."""
    import torch
    from test_model import tiny_model

    from depth_panoptic_ros.products import instance_depth_device

    model, frame, calls = tiny_model(), lidar_frame(), []
    host = Pipeline(model=model).run(frame, outputs={"instances"})
    assert host.panoptic.device_ids is None and (host.instances.valid_count > 0).sum() >= 2
    predict = model.predict

    def predict_on_device(*args, **kwargs):  # noqa: ANN202
        depth, result = predict(*args, **kwargs)
        result.device_ids = torch.from_numpy(result.ids.copy())
        return depth, result

    statistics = instance_depth_device.device_segment_statistics
    monkeypatch.setattr(model, "predict", predict_on_device)
    monkeypatch.setattr(
        instance_depth_device, "device_segment_statistics", lambda *a: calls.append(a[0]) or statistics(*a)
    )
    on_device = Pipeline(model=model).run(frame, outputs={"instances"})
    assert len(calls) == 1 and calls[0] is on_device.panoptic.device_ids
    np.testing.assert_array_equal(on_device.instances.depth_median, host.instances.depth_median)
    np.testing.assert_array_equal(on_device.instances.valid_count, host.instances.valid_count)
    np.testing.assert_allclose(on_device.instances.centroid, host.instances.centroid, rtol=2.5e-7)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: setattr(f, "rgb", f.rgb[:50]), "image is 160x50 but its camera model is 160x96"),
        (lambda f: setattr(f, "T_cam_lidar", None), "without the LiDAR -> camera extrinsic"),
        (lambda f: setattr(f, "points", None), "neither LiDAR points nor a right image"),
        (lambda f: setattr(f, "rgb", f.rgb[..., 0]), r"expected \(H, W, 3\) uint8 RGB"),
    ],
)
def test_bad_frames_raise_value_errors(change, message: str) -> None:
    frame = lidar_frame()
    change(frame)
    with pytest.raises(ValueError, match=message):
        Pipeline().run(frame)


def test_load_pipeline_resolves_models_and_configs(tmp_path: Path) -> None:
    from depth_panoptic_ros.model import CheckpointError

    assert load_pipeline(None, "").model is None
    with pytest.raises(CheckpointError, match="missing.safetensors does not exist"):
        load_pipeline(None, str(tmp_path / "missing.safetensors"))
    config = tmp_path / "pipeline.yaml"
    config.write_text("cloud: {stride: 4}\nlidar_max_range: 50.0\n")
    assert load_pipeline(config, "").config.cloud.stride == 4
    config.write_text("cloud: {strde: 4}\n")
    with pytest.raises(ValueError, match=r"pipeline.cloud: unknown key\(s\) \['strde'\]"):
        load_pipeline(config, "")


REPO = Path(__file__).resolve().parents[1]


def test_pipeline_yaml_states_every_key_at_its_default_with_a_comment() -> None:
    import yaml

    from depth_panoptic_ros.typed_config import to_dict

    text = (REPO / "config" / "pipeline.yaml").read_text()
    assert yaml.safe_load(text) == to_dict(PipelineConfig())
    settings = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(settings) > 30 and all(" # " in line for line in settings), [l for l in settings if " # " not in l]


def saved_model_with_settings(tmp_path: Path, settings: dict | None) -> Path:
    from test_model import tiny_model

    from depth_panoptic_ros.model import read_header, save_model

    model = tiny_model()
    model.pipeline_settings = settings
    path = tmp_path / "recorded.safetensors"
    save_model(path, model)
    assert read_header(path)["pipeline"] == settings
    return path


def test_the_model_s_recorded_completion_applies_unless_the_config_states_another(tmp_path: Path) -> None:
    recorded = {"completion": {"extend_px": 16, "same_surface_rel": 0.1}, "cloud": {"stride": 7}, "use_stereo": False}
    model = saved_model_with_settings(tmp_path, recorded)
    bound = load_pipeline(None, str(model))
    assert bound.config.completion.extend_px == 16 and bound.config.completion.same_surface_rel == 0.1
    assert bound.config.completion.along_gap_px == PipelineConfig().completion.along_gap_px
    # only the settings the networks depend on are bound; ranges, stereo use and the cloud stay deployment choices
    assert bound.config.cloud.stride == 2 and bound.config.use_stereo
    assert bound.changed_settings == () and bound.settings_warning is None

    config = tmp_path / "pipeline.yaml"
    config.write_text("completion: {extend_px: 48, same_surface_rel: 0.1}\ncloud: {stride: 3}\n")
    changed = load_pipeline(config, str(model))
    assert changed.config.completion.extend_px == 48 and changed.config.cloud.stride == 3
    assert changed.changed_settings == ("completion.extend_px 48 (model: 16)",)
    assert changed.settings_warning.startswith("pipeline settings differ from those the model was trained with: ")

    unrecorded = load_pipeline(config, str(saved_model_with_settings(tmp_path, None)))
    assert unrecorded.config.completion.extend_px == 48 and unrecorded.changed_settings == ()


def test_infer_cli_warns_once_when_the_config_changes_the_model_s_completion(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import yaml

    from depth_panoptic_ros.cli import main
    from depth_panoptic_ros.data.images import write_rgb

    frame = lidar_frame()
    write_rgb(tmp_path / "img.png", frame.rgb)
    np.save(tmp_path / "points.npy", frame.points)
    calib = {
        "width": 160,
        "height": 96,
        "K": frame.camera.K.ravel().tolist(),
        "T_cam_lidar": T_CAM_LIDAR.ravel().tolist(),
    }
    (tmp_path / "calib.yaml").write_text(yaml.safe_dump(calib))
    (tmp_path / "pipeline.yaml").write_text("completion: {extend_px: 48}\n")
    model = saved_model_with_settings(tmp_path, {"completion": {"extend_px": 16}})
    args = ["infer", "--image", str(tmp_path / "img.png"), "--lidar", str(tmp_path / "points.npy"), "--calib",
            str(tmp_path / "calib.yaml"), "--out", str(tmp_path / "out"), "--model", str(model)]  # fmt: skip
    assert main(args) == 0
    assert capsys.readouterr().err == ""
    assert main([*args, "--config", str(tmp_path / "pipeline.yaml")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"warning: pipeline settings differ from those the model was trained with: {err[0].split(': ', 2)[2]}"
    ]
    assert "completion.extend_px 48 (model: 16)" in err[0]


def test_the_old_british_key_still_loads_with_a_deprecation_warning(tmp_path: Path) -> None:
    config = tmp_path / "pipeline.yaml"
    config.write_text("cloud: {organised: true, stride: 3}\n")
    with pytest.warns(FutureWarning, match="'pipeline.cloud.organised' is deprecated, use 'organized'"):
        cloud = load_pipeline(config, "").config.cloud
    assert cloud.organized and cloud.stride == 3
    config.write_text("cloud: {organised: true, organized: false}\n")
    with pytest.raises(ValueError, match="both 'organised' and 'organized' given"):
        load_pipeline(config, "")


def test_infer_cli_on_real_kitti(kitti_object: Path, tmp_path: Path) -> None:
    from test_model import tiny_model

    from depth_panoptic_ros.cli import main
    from depth_panoptic_ros.data.kitti import read_kitti_calib, read_velodyne_bin
    from depth_panoptic_ros.model import save_model

    model_path = tmp_path / "tiny.safetensors"
    save_model(model_path, tiny_model())
    args = [
        "infer",
        "--image",
        str(kitti_object / "image_2/000000.png"),
        "--calib",
        str(kitti_object / "calib/000000.txt"),
    ]
    args += [
        "--lidar",
        str(kitti_object / "velodyne/000000.bin"),
        "--model",
        str(model_path),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) == 0
    out = tmp_path / "o"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "depth.npy",
            "depth.png",
            "points.ply",
            "panoptic.png",
            "panoptic_color.png",
            "depth_color.png",
            "instances.json",
        ]
    )
    camera, T = read_kitti_calib(kitti_object / "calib/000000.txt", image_size=(1224, 370))
    lidar = project_points(read_velodyne_bin(kitti_object / "velodyne/000000.bin"), T, camera, min_depth=0.5).depth
    depth = np.load(out / "depth.npy")
    assert depth.shape == (370, 1224)
    hit = lidar > 0
    # an untrained completion head adds a bounded residual; the depth stays anchored to the LiDAR
    assert np.median(np.abs(depth[hit] - lidar[hit])) < 1.0
    records = json.loads((out / "instances.json").read_text())
    assert all({"panoptic_id", "class_name", "depth_median"} <= set(r) for r in records)


def test_infer_cli_reports_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from depth_panoptic_ros.cli import main

    calib = tmp_path / "calib.yaml"
    calib.write_text("width: 4\nheight: 4\nK: [0, 0, 2, 0, 0, 2, 0, 0, 1]\n")
    image = tmp_path / "img.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((4, 4, 3), np.uint8))
    assert main(["infer", "--image", str(image), "--calib", str(calib), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "focal length" in err
