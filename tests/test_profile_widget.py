"""The resin profile dock in a real napari viewer: curves, table, CSV, live updates, baselines, bad input."""

import csv
import threading

import dask
import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_nrrn.measures.baselines import BASELINES
from napari_nrrn.measures.metrics import psnr, ssim
from napari_nrrn.measures.profiles import iqr, line_profile, mean_line_iqr, path_distances
from napari_nrrn.plugin import _compare_panel, _profile_panel
from napari_nrrn.plugin.profile_widget import RESIN_LINES_NAME, ResinProfileWidget, lines_in_data_coords

RESIN_LINE = np.array([[20.0, 40.0], [20.0, 280.0]])  # flat embedding resin at the top of the SEM image


@pytest.fixture(scope="module")
def sem(shared_data):
    return tifffile.imread(shared_data / "sem_n2v_demo_600x600_float32.tif")


@pytest.fixture
def notifications(monkeypatch):
    """Errors and warnings the widget shows, as (severity, message)."""
    shown = []
    for module in (_profile_panel, _compare_panel):
        monkeypatch.setattr(module, "show_error", lambda message: shown.append(("error", message)))
        monkeypatch.setattr(module, "show_warning", lambda message: shown.append(("warning", message)))
    return shown


def dock(viewer) -> ResinProfileWidget:
    _, widget = viewer.window.add_plugin_dock_widget("napari-nrrn", "Resin line profiles")
    return widget


def make_widget(qtbot, viewer) -> ResinProfileWidget:
    widget = ResinProfileWidget(viewer)
    qtbot.addWidget(widget)
    return widget


def test_manifest_dock_plots_one_curve_per_chosen_layer_with_iqr(make_napari_viewer, sem, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(sem, name="raw")
    smoothed = BASELINES["gaussian"](sem, sigma=2.0)
    viewer.add_image(smoothed, name="smoothed")
    viewer.add_image(sem[::-1], name="flipped")
    widget = dock(viewer)
    assert isinstance(widget, ResinProfileWidget)

    lines = widget.profile.add_resin_lines_layer()
    assert lines.name == RESIN_LINES_NAME and lines.mode == "add_line"
    assert widget.profile.shapes_layer.name == RESIN_LINES_NAME
    lines.add_lines([RESIN_LINE])
    widget.profile.set_layer_checked("flipped", False)
    widget.profile.update_now()

    assert set(widget.profile.profiles) == {("raw", 0), ("smoothed", 0)}
    np.testing.assert_array_equal(widget.profile.profiles["raw", 0], line_profile(sem, *RESIN_LINE))
    np.testing.assert_array_equal(widget.profile.profiles["smoothed", 0], line_profile(smoothed, *RESIN_LINE))
    np.testing.assert_allclose(widget.profile.distances["raw", 0], np.arange(241.0))

    curves = widget.profile.plot.curves()
    assert len(curves) == 2
    raw_iqr, smooth_iqr = iqr(widget.profile.profiles["raw", 0]), iqr(widget.profile.profiles["smoothed", 0])
    assert smooth_iqr < 0.5 * raw_iqr
    assert curves[0][2] == f"raw: IQR {raw_iqr:.0f}" and curves[1][2] == f"smoothed: IQR {smooth_iqr:.0f}"
    np.testing.assert_array_equal(curves[0][1], widget.profile.profiles["raw", 0])

    rows = widget.profile.table_rows()
    assert [(row["layer"], row["line"]) for row in rows] == [("raw", 0), ("smoothed", 0)]
    assert rows[0]["iqr"] == raw_iqr and rows[0]["samples"] == 241
    assert rows[0]["mean"] == pytest.approx(np.mean(widget.profile.profiles["raw", 0]))
    assert widget.profile.table.rowCount() == 2 and widget.profile.table.item(1, 0).text() == "smoothed"

    csv_path = tmp_path / "profiles.csv"
    widget.profile.export_csv(csv_path)
    with open(csv_path, newline="") as file:
        read_back = list(csv.DictReader(file))
    assert [row["layer"] for row in read_back] == ["raw", "smoothed"]
    for written, row in zip(read_back, rows, strict=True):
        assert int(written["line"]) == row["line"] and int(written["samples"]) == row["samples"]
        for column in ("iqr", "mean", "std"):
            assert float(written[column]) == row[column]  # full precision round trip

    png_path = tmp_path / "profiles.png"
    widget.profile.export_png(png_path)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_layers_of_different_scale_line_up_in_world_space(make_napari_viewer, qtbot):
    rows, cols = np.mgrid[:80, :100]
    fine = 3.0 * rows - 2.0 * cols + 500
    viewer = make_napari_viewer()
    viewer.add_image(fine, name="fine", translate=(4, 6))
    viewer.add_image(fine[::2, ::2], name="coarse", scale=(2, 2), translate=(4, 6))
    widget = make_widget(qtbot, viewer)
    lines = viewer.add_shapes(ndim=2, name="lines")
    world_line = np.array([[10.0, 12.0], [70.0, 90.0]])
    lines.add_lines([world_line])
    widget.profile.choose_shapes_layer("lines")
    widget.profile.update_now()
    x_fine, x_coarse = widget.profile.distances["fine", 0], widget.profile.distances["coarse", 0]
    assert x_fine[-1] == pytest.approx(x_coarse[-1]) == pytest.approx(np.hypot(60, 78))
    assert len(x_fine) == 100 and len(x_coarse) == 51  # about one sample per pixel of each layer
    np.testing.assert_allclose(
        np.interp(x_coarse, x_fine, widget.profile.profiles["fine", 0]),
        widget.profile.profiles["coarse", 0],
        atol=1e-9,
    )
    np.testing.assert_allclose(
        widget.profile.profiles["fine", 0][[0, -1]], [3 * 6 - 2 * 6 + 500, 3 * 66 - 2 * 84 + 500]
    )

    # The reusable score (the denoise widget's depth explorer): lines in the coarse layer's pixels.
    coarse_lines = lines_in_data_coords(lines, viewer.layers["coarse"])
    np.testing.assert_allclose(coarse_lines[0], (world_line - [4, 6]) / 2)
    assert mean_line_iqr(fine[::2, ::2], coarse_lines) == widget.profile.table_rows()[1]["iqr"]


def test_profile_follows_a_moved_line(make_napari_viewer, qtbot, sem):
    viewer = make_napari_viewer()
    viewer.add_image(sem, name="raw")
    widget = dock(viewer)
    lines = widget.profile.add_resin_lines_layer()
    lines.add_lines([RESIN_LINE])
    qtbot.waitUntil(lambda: ("raw", 0) in widget.profile.profiles, timeout=5000)

    moved = RESIN_LINE + [[15.0, 3.5], [15.0, 3.5]]
    lines.data = [moved]
    expected = line_profile(sem, *moved)
    qtbot.waitUntil(
        lambda: np.array_equal(widget.profile.profiles.get(("raw", 0), np.empty(0)), expected), timeout=5000
    )
    assert widget.profile.table_rows()[0]["iqr"] == iqr(expected)


def test_profile_follows_the_displayed_slice_and_reads_only_it(make_napari_viewer, qtbot, shared_data):
    gala = tifffile.imread(shared_data / "fibsem_flyem_gala_test_50x100x200.tif")[:6]
    reads = []

    def load(z):
        reads.append(z)
        return gala[z]

    stack = da.stack(
        [da.from_delayed(dask.delayed(load)(z), shape=gala.shape[1:], dtype=gala.dtype) for z in range(6)]
    )
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="stack", scale=(10, 10, 10))
    viewer.add_image(gala[0], name="first slice", scale=(10, 10))  # 2-D: shown, and profiled, on every slice
    widget = make_widget(qtbot, viewer)
    lines = widget.profile.add_resin_lines_layer()  # 2-D, on the stack's (y, x) pixel grid
    assert tuple(lines.scale) == (10, 10)
    line = np.array([[5.0, 10.0], [90.0, 180.0]])  # data coordinates of the stack
    lines.add_lines([line])
    viewer.dims.set_current_step(0, 2)
    qtbot.waitUntil(lambda: ("stack", 0) in widget.profile.profiles, timeout=5000)
    np.testing.assert_allclose(widget.profile.profiles["stack", 0], line_profile(gala, *line, z=2))
    np.testing.assert_allclose(widget.profile.distances["stack", 0], path_distances(line, scale=(10, 10)))

    reads.clear()
    viewer.dims.set_current_step(0, 4)
    expected = line_profile(gala, *line, z=4)
    qtbot.waitUntil(lambda: np.array_equal(widget.profile.profiles["stack", 0], expected), timeout=5000)
    assert set(reads) == {4}  # napari's own display and the profile read slice 4 only
    np.testing.assert_allclose(widget.profile.profiles["first slice", 0], line_profile(gala[0], *line))
    assert widget.profile.problems == []


def test_layer_choices_follow_layers_added_renamed_and_removed(make_napari_viewer, qtbot, sem):
    viewer = make_napari_viewer()
    widget = make_widget(qtbot, viewer)
    assert widget.profile.shapes_layer is None and widget.profile.image_list.count() == 0
    viewer.add_image(sem[:50, :50], name="raw")
    viewer.add_image(sem[:50, :50], name="other")
    widget.profile.set_layer_checked("other", False)
    names = lambda combo: [combo.itemText(i) for i in range(combo.count())]  # noqa: E731
    assert names(widget.compare.source_combo) == names(widget.compare.reference_combo) == ["raw", "other"]
    assert [layer.name for layer in widget.profile.chosen_image_layers()] == ["raw"]

    drawn = viewer.add_shapes(name="my lines")
    assert names(widget.profile.shapes_combo) == ["my lines"]
    assert widget.profile.shapes_layer.name == "my lines"
    resin = widget.profile.add_resin_lines_layer()
    assert names(widget.profile.shapes_combo) == ["my lines", RESIN_LINES_NAME]
    assert widget.profile.shapes_layer.name == RESIN_LINES_NAME

    viewer.layers["raw"].name = "renamed"
    assert [widget.profile.image_list.item(i).text() for i in range(2)] == ["renamed", "other"]
    # "other" stays unticked
    assert [layer.name for layer in widget.profile.chosen_image_layers()] == ["renamed"]
    viewer.layers.remove(resin)
    assert names(widget.profile.shapes_combo) == ["my lines"]
    assert widget.profile.shapes_layer.name == drawn.name
    viewer.layers.remove("other")
    assert names(widget.compare.source_combo) == ["renamed"]


def test_baselines_run_in_a_worker_into_aligned_layers_with_metrics(make_napari_viewer, qtbot, shared_data):
    gala = tifffile.imread(shared_data / "fibsem_flyem_gala_test_50x100x200.tif")[:5]
    viewer = make_napari_viewer()
    viewer.add_image(gala, name="gala", scale=(10, 4, 4), translate=(100, 0, 0))
    widget = make_widget(qtbot, viewer)
    viewer.dims.set_point(0, 100 + 3 * 10)  # world z of slice 3
    widget.compare.reference_combo.setCurrentText("gala")
    methods = {"gaussian": {"sigma": 1.5}, "median": {"size": 3}}
    assert widget.compare.run_baselines("gala", methods) is not None
    # The layers appear when the worker returns, then PSNR/SSIM follow in a second worker.
    qtbot.waitUntil(lambda: len(widget.compare.metric_rows()) == 2, timeout=20000)
    qtbot.waitUntil(widget.compare.run_button.isEnabled, timeout=5000)

    for method in ("gaussian", "median"):
        layer = viewer.layers[f"gala {method}"]
        assert layer.data.shape == (1, 100, 200) and layer.data.dtype == np.uint8
        assert tuple(layer.scale) == (10, 4, 4) and tuple(layer.translate) == (130, 0, 0)
        assert layer.metadata["nrrn_baseline"]["z"] == 3
    expected = BASELINES["gaussian"](gala[3], sigma=1.5)
    np.testing.assert_array_equal(viewer.layers["gala gaussian"].data[0], expected)
    assert widget.compare.progress.value() == 2

    rows = {row["layer"]: row for row in widget.compare.metric_rows()}
    assert rows["gala gaussian"]["psnr"] == pytest.approx(psnr(expected, gala[3]))
    assert rows["gala gaussian"]["ssim"] == pytest.approx(ssim(expected, gala[3]))

    # The one-slice layers line up with slice 3 and have no slice elsewhere.
    lines = viewer.add_shapes(ndim=2, name="lines", scale=(4, 4))
    lines.add_lines([np.array([[10.0, 10.0], [10.0, 150.0]])])
    widget.profile.choose_shapes_layer("lines")
    widget.profile.update_now()
    np.testing.assert_array_equal(
        widget.profile.profiles["gala gaussian", 0], line_profile(expected, (10, 10), (10, 150))
    )
    viewer.dims.set_point(0, 100 + 1 * 10)
    widget.profile.update_now()
    assert set(widget.profile.profiles) == {("gala", 0)}
    assert "layer 'gala gaussian' has no slice at z = 110" in widget.profile.status.text()
    assert widget.profile.problems == []


def test_cancel_stops_between_baselines_and_adds_nothing(make_napari_viewer, qtbot, monkeypatch, sem):
    from napari_nrrn.plugin import _profile_compare

    release = threading.Event()

    def held(image):
        release.wait(10)
        return image

    monkeypatch.setitem(_profile_compare.BASELINES, "held", held)
    monkeypatch.setitem(_profile_compare.BASELINES, "after", lambda image: image)
    viewer = make_napari_viewer()
    viewer.add_image(sem[:64, :64], name="raw")
    widget = make_widget(qtbot, viewer)
    worker = widget.compare.run_baselines("raw", {"held": {}, "after": {}})
    assert not widget.compare.run_button.isEnabled() and widget.compare.cancel_button.isEnabled()
    with qtbot.waitSignal(worker.finished, timeout=10000):
        widget.compare.cancel_baselines()
        release.set()
    qtbot.waitUntil(widget.compare.run_button.isEnabled, timeout=5000)
    assert [layer.name for layer in viewer.layers] == ["raw"]
    assert not widget.compare.cancel_button.isEnabled()


def test_bad_lines_and_missing_layers_notify_without_crashing(make_napari_viewer, qtbot, notifications, sem):
    viewer = make_napari_viewer()
    widget = make_widget(qtbot, viewer)
    lines = widget.profile.add_resin_lines_layer()
    assert notifications == [
        ("warning", "No image layers yet: open an image, then draw lines through its resin.")
    ]
    lines.add_lines([RESIN_LINE])
    widget.profile.update_now()
    assert notifications[-1] == ("warning", "No image layers to profile: open an image first.")
    assert widget.profile.profiles == {}

    viewer.add_image(sem[:100, :300], name="raw")
    lines.data = [
        np.array([[20.0, 40.0], [20.0, 40.0]]),
        np.array([[20.0, 250.0], [20.0, 450.0]]),
        RESIN_LINE,
    ]
    widget.profile.update_now()
    assert set(widget.profile.profiles) == {("raw", 2)}  # the good line is still measured
    errors = [message for severity, message in notifications if severity == "error"]
    assert any("line 0 on layer 'raw': zero-length line" in message for message in errors)
    assert any("line 1 on layer 'raw'" in message and "outside the image" in message for message in errors)
    count = len(notifications)
    widget.profile.update_now()
    assert len(notifications) == count  # the same problems are not notified again on every update

    widget.compare.run_baselines("no such layer")
    assert notifications[-1][0] == "error" and "No image layer to denoise" in notifications[-1][1]


def test_bm3d_missing_is_an_error_not_a_crash(make_napari_viewer, qtbot, notifications, monkeypatch, sem):
    monkeypatch.setattr(_compare_panel, "bm3d_available", lambda: False)
    viewer = make_napari_viewer()
    viewer.add_image(sem[:64, :64], name="raw")
    widget = make_widget(qtbot, viewer)
    assert widget.compare.run_baselines("raw", {"bm3d": {}}) is None
    assert notifications == [("error", "BM3D needs the optional package bm3d: pip install bm3d")]


# ----- a new user's view: the samples' own names, a real window, default dock sizes ---------------------

MEDULLA = "FIB-SEM sample (FlyEM medulla + synthetic noise)"
GALA = "FIB-SEM sample (FlyEM gala, correlated noise)"


def open_medulla(viewer):
    [layer] = viewer.open_sample("napari-nrrn", "fibsem")
    assert layer.name == MEDULLA and tuple(layer.scale) == (10, 10, 10)
    return layer


def settle(qtbot, ms=300):
    qtbot.wait(ms)


def sample_with_results_and_two_lines(make_napari_viewer, qtbot):
    """The dock in a real window on the medulla sample and two results named as the docks name them, with
    two lines: 6 profiles, long names."""
    viewer = make_napari_viewer(show=True)
    medulla = open_medulla(viewer)
    viewer.add_image(medulla.data, name=f"{MEDULLA} NRRN denoised", scale=medulla.scale)
    viewer.add_image(medulla.data, name=f"{MEDULLA} gaussian", scale=medulla.scale)
    widget = dock(viewer)
    lines = widget.profile.add_resin_lines_layer()
    lines.add_lines([np.array([[70.0, 74.0], [70.0, 97.0]]), np.array([[20.0, 10.0], [120.0, 150.0]])])
    widget.profile.update_now()
    settle(qtbot)
    return widget


def legend_boxes(plot, dpi=None):
    """Window extents of the legend's texts, drawn at ``dpi`` (default: the screen's)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = plot.figure
    renderer = FigureCanvasAgg(figure).get_renderer() if dpi else plot.get_renderer()
    if dpi:
        saved, figure.dpi = figure.dpi, dpi
    try:
        figure.draw(renderer)
        texts = plot.get_legend().get_texts()
        return [text.get_window_extent(renderer) for text in texts], figure.bbox.frozen()
    finally:
        if dpi:
            figure.dpi = saved
            figure.set_canvas(plot)


def assert_apart_and_inside(boxes, figure_box):
    for box in boxes:
        assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1 and box.y1 <= figure_box.y1, box
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            assert not first.overlaps(second), (first, second)


def test_legend_entries_never_overlap_in_the_dock_or_the_png(make_napari_viewer, qtbot, tmp_path):
    widget = sample_with_results_and_two_lines(make_napari_viewer, qtbot)
    plot = widget.profile.plot
    labels = [text.get_text() for text in plot.get_legend().get_texts()]
    assert len(labels) == 6 and all("IQR" in label for label in labels)
    assert_apart_and_inside(*legend_boxes(plot))

    widget.profile.export_png(tmp_path / "profiles.png")
    assert_apart_and_inside(*legend_boxes(plot, dpi=150))


def test_distances_in_nm_or_micrometres_and_the_csv_says_where(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    medulla = open_medulla(viewer)
    widget = dock(viewer)
    viewer.dims.set_current_step(0, 16)
    lines = widget.profile.add_resin_lines_layer()
    line = np.array([[70.0, 74.0], [70.0, 97.0]])  # pixels of the sample
    lines.add_lines([line])
    widget.profile.update_now()
    assert widget.profile.plot.x_label() == "distance along the line (nm)"
    np.testing.assert_allclose(widget.profile.distances[MEDULLA, 0], path_distances(line, scale=(10, 10)))
    np.testing.assert_allclose(widget.profile.plot.curves()[0][0], widget.profile.distances[MEDULLA, 0])

    csv_path = tmp_path / "profiles.csv"
    widget.profile.export_csv(csv_path)
    with open(csv_path, newline="", encoding="utf-8") as file:
        [row] = list(csv.DictReader(file))
    assert row["slice"] == "16" and float(row["length_nm"]) == pytest.approx(230.0)
    world = line * 10
    assert [float(row[key]) for key in ("start_y_nm", "start_x_nm", "end_y_nm", "end_x_nm")] == [
        *world[0],
        *world[1],
    ]
    assert float(row["iqr"]) == iqr(line_profile(medulla.data, *line, z=16))

    # A long line is shown in µm; a layer without a scale in pixels.
    lines.data = [np.array([[10.0, 5.0], [150.0, 155.0]])]
    widget.profile.update_now()
    assert widget.profile.plot.x_label() == "distance along the line (\N{MICRO SIGN}m)"
    np.testing.assert_allclose(
        widget.profile.plot.curves()[0][0], widget.profile.distances[MEDULLA, 0] / 1000
    )
    medulla.metadata = {}
    medulla.scale = (1, 1, 1)
    widget.profile.update_now()
    assert widget.profile.plot.x_label() == "distance along the line (px)"


def test_table_shows_every_row_and_every_column_without_scrolling(make_napari_viewer, qtbot):
    widget = sample_with_results_and_two_lines(make_napari_viewer, qtbot)
    table = widget.profile.table
    assert table.rowCount() == 6
    needed = sum(table.rowHeight(row) for row in range(6))
    assert table.viewport().height() >= needed
    columns = sum(table.columnWidth(column) for column in range(table.columnCount()))
    assert columns <= table.viewport().width()
    assert table.horizontalScrollBar().maximum() == 0
    iqr_column = 2
    iqr_right = table.columnViewportPosition(iqr_column) + table.columnWidth(iqr_column)
    assert iqr_right <= table.viewport().width()


def test_both_docks_stay_usable_when_both_are_open(make_napari_viewer, qtbot):
    from napari_nrrn.plugin.denoise_widget import DenoiseWidget

    viewer = make_napari_viewer(show=True)
    open_medulla(viewer)
    denoise = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(denoise, name="NRRN denoising")
    profiles = ResinProfileWidget(viewer)
    viewer.window.add_dock_widget(profiles, name="Resin line profiles")
    settle(qtbot, 500)
    denoise_height, profile_height = denoise.height(), profiles.height()
    assert denoise_height >= 200 and profile_height >= 200, (denoise_height, profile_height)
    assert min(denoise_height, profile_height) >= 0.3 * (denoise_height + profile_height)
    # Nothing of the profile dock is cut at the right edge (it scrolls only vertically).
    assert profiles.scroll.widget().minimumSizeHint().width() <= profiles.scroll.viewport().width()


def test_hidden_layers_and_other_fields_are_not_profiled_by_default(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    medulla = open_medulla(viewer)
    viewer.add_image(medulla.data, name="clean", scale=medulla.scale, visible=False)
    [gala] = viewer.open_sample("napari-nrrn", "fibsem_gala")
    assert gala.name == GALA and gala.data.shape[-2:] != medulla.data.shape[-2:]
    widget = dock(viewer)
    viewer.layers.selection.active = medulla
    lines = widget.profile.add_resin_lines_layer()
    lines.add_lines([np.array([[70.0, 74.0], [70.0, 97.0]])])
    widget.profile.update_now()
    assert [layer.name for layer in widget.profile.chosen_image_layers()] == [MEDULLA]
    assert set(widget.profile.profiles) == {(MEDULLA, 0)}

    widget.profile.set_layer_checked("clean", True)  # a hidden layer is profiled once ticked
    widget.profile.update_now()
    assert set(widget.profile.profiles) == {(MEDULLA, 0), ("clean", 0)}


def test_baseline_layers_go_below_the_resin_lines(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    open_medulla(viewer)
    widget = dock(viewer)
    widget.profile.add_resin_lines_layer()
    assert widget.compare.run_baselines(MEDULLA, {"gaussian": {"sigma": 1.0}, "median": {"size": 3}})
    qtbot.waitUntil(widget.compare.run_button.isEnabled, timeout=20000)
    names = [layer.name for layer in viewer.layers]
    assert names == [MEDULLA, f"{MEDULLA} gaussian", f"{MEDULLA} median", RESIN_LINES_NAME]


def test_a_4d_layer_is_profiled_at_the_displayed_index_of_its_leading_axis(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    medulla = open_medulla(viewer)
    blocks = [medulla.data[16].astype(np.float32) + 10 * depth for depth in range(4)]
    name = "four outputs of slice 16"
    z16 = medulla.translate[0] + 16 * medulla.scale[0]
    viewer.add_image(  # a leading axis of 4 in front of slice 16 of the stack
        np.stack(blocks)[:, None],
        name=name,
        scale=(1.0, *medulla.scale),
        translate=(0.0, z16, *medulla.translate[1:]),
    )
    widget = dock(viewer)
    lines = widget.profile.add_resin_lines_layer()
    line = np.array([[70.0, 74.0], [70.0, 97.0]])
    lines.add_lines([line])
    viewer.dims.set_point(1, 16 * 10)
    viewer.dims.set_current_step(0, 2)
    widget.profile.update_now()
    np.testing.assert_allclose(widget.profile.profiles[name, 0], line_profile(blocks[2], *line))
    np.testing.assert_allclose(widget.profile.profiles[MEDULLA, 0], line_profile(medulla.data[16], *line))
    assert widget.profile.problems == []
    viewer.dims.set_current_step(0, 0)
    widget.profile.update_now()
    np.testing.assert_allclose(widget.profile.profiles[name, 0], line_profile(blocks[0], *line))


def test_psnr_against_the_noisy_input_warns_and_a_clean_reference_does_not(make_napari_viewer, qtbot, sem):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(sem, name="raw")
    viewer.add_image(BASELINES["gaussian"](sem, sigma=4.0), name="clean")
    widget = dock(viewer)
    assert widget.compare.run_baselines("raw", {"gaussian": {"sigma": 1.0}})
    qtbot.waitUntil(widget.compare.run_button.isEnabled, timeout=20000)
    widget.compare.compute_metrics_now("raw")
    warning = widget.compare.reference_warning
    assert warning.startswith("'raw' is the noisy input of 'raw gaussian': PSNR/SSIM against noisy data")
    assert "Gaussian" in warning and widget.compare.warning.isVisible()
    assert widget.compare.warning.text() == warning

    widget.compare.compute_metrics_now("clean")
    assert widget.compare.reference_warning is None and not widget.compare.warning.isVisible()
    [layer] = viewer.open_sample("napari-nrrn", "sem_resin")
    widget.compare.compute_metrics_now(layer.name)
    assert widget.compare.reference_warning.startswith(f"'{layer.name}' is a noisy sample")


def test_plots_follow_the_napari_theme(make_napari_viewer, qtbot):
    from matplotlib.colors import to_hex

    from napari_nrrn.plugin._dock_layout import theme_colours

    viewer = make_napari_viewer(show=True)
    widget = dock(viewer)
    _, denoising = viewer.window.add_plugin_dock_widget("napari-nrrn", "NRRN denoising")
    plots = (widget.profile.plot, denoising.training_section.loss_plot)
    for theme in ("dark", "light"):
        viewer.theme = theme
        background, text = theme_colours(viewer)
        for plot in plots:
            assert to_hex(plot.figure.get_facecolor()) == background.lower()
            assert to_hex(plot.axes.xaxis.label.get_color()) == text.lower()
    assert denoising.training_section.loss_plot.axes.get_xlabel() == "step"
    assert theme_colours(viewer)[0] != "#262930"  # the light theme really is another background


def test_a_region_preview_counts_as_the_same_field(make_napari_viewer, qtbot):
    from napari_nrrn.plugin._denoise_layers import PREVIEW, result_name, show_result, slice_result

    viewer = make_napari_viewer(show=True)
    medulla = open_medulla(viewer)
    region = medulla.data[16, 40:100, 50:120]
    name = result_name(MEDULLA, PREVIEW)
    show_result(viewer, name, medulla, *slice_result(medulla, 16, region, origin=(40, 50)))
    viewer.add_image(region, name="a crop at 1 px", visible=True)  # another grid: not this field
    widget = dock(viewer)
    viewer.layers.selection.active = medulla
    lines = widget.profile.add_resin_lines_layer()
    line = np.array([[70.0, 74.0], [70.0, 97.0]])
    lines.add_lines([line])
    viewer.dims.set_current_step(0, 16)
    widget.profile.update_now()
    assert [layer.name for layer in widget.profile.chosen_image_layers()] == [MEDULLA, name]
    np.testing.assert_array_equal(widget.profile.profiles[name, 0], widget.profile.profiles[MEDULLA, 0])
