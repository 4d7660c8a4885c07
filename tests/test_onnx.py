"""ONNX export: onnxruntime gives torch's output, whole sequences and streamed frames alike."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from jointpose.cli import main
from jointpose.errors import JointposeError
from jointpose.inference.lifter import Lifter
from jointpose.inference.onnx import OnnxModel, StreamingStep, export_onnx
from jointpose.inference.pretrained import pretrained_file
from jointpose.inference.streaming import StreamingLifter
from jointpose.model.loading import LoadedModel
from jointpose.model.temporal import TemporalModel
from test_inference import _model as _inference_model

needs_ort = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxscript") is None,
    reason="the optional extra jointpose[onnx] is not installed",
)
SIZE = (1000, 1000)


def _model(causal: bool) -> TemporalModel:
    """A small model with batch-norm statistics far from the identity (folding them matters)."""
    return _inference_model(causal, widths=(3, 3, 3), channels=48)


def _keypoints(frames: int, seed: int = 0) -> np.ndarray:
    """A smooth random walk of 17 pixel keypoints in a 1000 x 1000 image."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(300, 700, (1, 17, 2))
    return start + np.cumsum(rng.normal(0, 3, (frames, 17, 2)), axis=0)


@needs_ort
@pytest.mark.parametrize("causal", [False, True])
def test_onnx_network_equals_torch_on_random_input(tmp_path, causal):
    model = _model(causal)
    path = export_onnx(LoadedModel(model), tmp_path / "m.onnx")
    runner = OnnxModel(path)
    assert (runner.receptive_field(), runner.causal, runner.streaming) == (27, causal, False)
    for shape in [(1, 27, 17, 2), (3, 140, 17, 2)]:  # batch and frames are dynamic
        x = torch.randn(shape)
        with torch.no_grad():
            expected = model(x)
        got = runner(x)
        assert got.shape == expected.shape == (shape[0], shape[1] - 26, 17, 3)
        assert (got - expected).abs().max() < 1e-4


@needs_ort
def test_lifter_on_onnx_equals_torch_with_its_inference_step(tmp_path):
    settings = dict(
        fps=25.0, skeleton_fit=True, smooth=1.5, normalization="intrinsics", align_2d=0.5, input_layout="blazepose"
    )
    lifter = Lifter(_model(False).train(), flip_test=True, **settings)
    assert lifter.export_onnx(tmp_path / "m.onnx") == tmp_path / "m.onnx"
    assert not lifter.model.training  # a Lifter's model is in eval mode, and stays so
    onnx_lifter = Lifter.load(tmp_path / "m.onnx")
    assert {name: getattr(onnx_lifter, name) for name in settings} == settings
    assert onnx_lifter.keypoints_left == lifter.keypoints_left
    for frames in (5, 90):  # shorter than the receptive field (padded) and longer
        kp = _keypoints(frames)
        assert np.abs(onnx_lifter.predict(kp, SIZE) - lifter.predict(kp, SIZE)).max() < 1e-4


@pytest.fixture(scope="module")
def bundled_exports(tmp_path_factory):
    """Both bundled models exported through the CLI, and the causal one's streaming step: the
    offline model by its file's path, the causal one by name (``--pretrained``)."""
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxscript") is None:
        pytest.skip("the optional extra jointpose[onnx] is not installed")
    folder = tmp_path_factory.mktemp("onnx")
    paths = {}
    for variant, streaming in [("offline", False), ("causal", False), ("causal", True)]:
        with pretrained_file(variant) as src:
            model = [str(src)] if variant == "offline" else ["--pretrained", variant]
            out = folder / f"{variant}{'_step' if streaming else ''}.onnx"
            assert main(["export", *model, "--onnx", str(out), *(["--streaming"] if streaming else [])]) == 0
        paths[variant, streaming] = out
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["offline", "causal"])
def test_bundled_model_on_onnx_equals_torch(bundled_exports, variant):
    torch_lifter = Lifter.from_pretrained(variant, device="cpu")
    onnx_lifter = Lifter.load(bundled_exports[variant, False])
    assert isinstance(onnx_lifter.model, OnnxModel) and onnx_lifter.skeleton_fit == torch_lifter.skeleton_fit
    assert onnx_lifter.input_layout == torch_lifter.input_layout == "coco"  # kept by jointpose export
    kp = _keypoints(400, seed=1)
    expected = torch_lifter.predict(kp, SIZE)
    assert np.abs(expected).max() > 0.1  # a real body in metres, not zeros
    assert np.abs(onnx_lifter.predict(kp, SIZE) - expected).max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("flip", [False, True])
def test_streaming_onnx_equals_torch_streaming_frame_by_frame(bundled_exports, flip):
    torch_stream = StreamingLifter(Lifter.from_pretrained("causal", device="cpu"), flip_test=flip)
    onnx_stream = StreamingLifter(Lifter.load(bundled_exports["causal", True]), flip_test=flip)
    assert onnx_stream.skeleton_fit == torch_stream.skeleton_fit
    for frame in _keypoints(30, seed=2):
        expected = torch_stream.push(frame, SIZE)
        assert np.abs(onnx_stream.push(frame, SIZE) - expected).max() < 1e-4
    onnx_stream.reset()  # fresh caches: the first frame again gives the first pose
    first = _keypoints(1, seed=2)[0]
    torch_stream.reset()
    assert np.abs(onnx_stream.push(first, SIZE) - torch_stream.push(first, SIZE)).max() < 1e-4


@needs_ort
def test_streaming_step_caches_hold_each_convolutions_span(tmp_path):
    model = _model(True)
    step = StreamingStep(model)
    # Widths 3, 3, 3: the expanding convolution reads 3 frames, the dilated ones 7 and 19.
    assert step.cache_shapes(2) == [(2, 34, 2), (2, 48, 6), (2, 48, 18)]
    runner = OnnxModel(export_onnx(LoadedModel(model), tmp_path / "s.onnx", streaming=True))
    assert [tuple(i.shape[1:]) for i in runner.session.get_inputs()[1:]] == [s[1:] for s in step.cache_shapes()]
    x = torch.randn(1, 50, 17, 2)
    with torch.no_grad():
        expected = model(x)[0]
    stream = runner.new_stream()
    got = torch.stack([stream(x[0, t]) for t in range(50)])[26:]  # after one receptive field: the full model's frames
    assert (got - expected).abs().max() < 1e-4


@needs_ort
@pytest.mark.slow  # a process of its own and a full export: about 10 s
def test_export_writes_only_its_own_line(tmp_path):
    # torch's exporter logs four "torchvision is not installed" lines; jointpose keeps them out.
    # In a process of its own: pytest would capture the log records before they reach stderr.
    src = tmp_path / "small.safetensors"
    Lifter(_model(causal=True)).save(src)
    command = [sys.executable, "-m", "jointpose", "export", str(src), "--onnx", str(tmp_path / "small.onnx")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith(f"wrote {tmp_path / 'small.onnx'} (full sequence")


@needs_ort
def test_export_errors_are_one_line_and_leave_no_file(tmp_path, capsys):
    with pretrained_file("offline") as src:
        target = tmp_path / "kept.onnx"
        target.write_bytes(b"previous")
        assert main(["export", str(src), "--onnx", str(target), "--streaming"]) == 2
        assert "causal" in capsys.readouterr().err
        assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.onnx"]
        assert main(["export", str(src), "--onnx", str(tmp_path / "out.txt")]) == 2
        assert ".onnx" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.safetensors"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    for wrong in (["x.pt", "--pretrained", "causal"], []):  # a model, or a bundled one by name
        with pytest.raises(SystemExit) as exit:
            main(["export", *wrong, "--onnx", str(tmp_path / "x.onnx")])
        assert exit.value.code == 2
    assert not (tmp_path / "x.onnx").exists()
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a graph")
    with pytest.raises(JointposeError, match="bogus.onnx: not a readable ONNX model"):
        Lifter.load(bogus)
    with pytest.raises(JointposeError, match="CPU provider"):
        Lifter.load(bogus, device="cuda")


@needs_ort
def test_each_export_kind_refuses_the_other_use(tmp_path):
    full = Lifter.load(export_onnx(LoadedModel(_model(True)), tmp_path / "full.onnx"))
    step = Lifter.load(export_onnx(LoadedModel(_model(True)), tmp_path / "step.onnx", streaming=True))
    with pytest.raises(JointposeError, match="streaming export"):
        step.predict(_keypoints(30), SIZE)
    np.save(tmp_path / "kp.npy", _keypoints(30))
    infer = ["infer", str(tmp_path / "kp.npy"), "-o", str(tmp_path / "o.npz"), "--image-size", *map(str, SIZE)]
    assert main([*infer, "--checkpoint", str(tmp_path / "step.onnx"), "--no-progress"]) == 2
    assert not (tmp_path / "o.npz").exists()
    with pytest.raises(JointposeError, match="--streaming"):
        StreamingLifter(full)
    with pytest.raises(JointposeError, match="fp32"):
        StreamingLifter(step, precision="int8")
    with pytest.raises(JointposeError, match="no torch weights to save as safetensors"):
        step.save(tmp_path / "x.safetensors")
    with pytest.raises(JointposeError, match="step.onnx: an ONNX export holds no torch weights to export again"):
        step.export_onnx(tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()


def test_export_leaves_the_model_as_it_was_and_wants_an_onnx_name(tmp_path):
    model = _model(True).train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    with pytest.raises(JointposeError, match=r"^path .*m\.pt: the file name must end in \.onnx$"):
        export_onnx(LoadedModel(model), tmp_path / "m.pt")
    with pytest.raises(JointposeError, match="path 3: the file name must end in .onnx"):
        Lifter(_model(True)).export_onnx(3)
    if importlib.util.find_spec("onnxscript") is not None:
        export_onnx(LoadedModel(model), tmp_path / "m.onnx", streaming=True)
        assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert list(tmp_path.iterdir()) == ([tmp_path / "m.onnx"] if (tmp_path / "m.onnx").exists() else [])


def test_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as when not installed
    path = tmp_path / "m.onnx"
    path.write_bytes(b"")
    with pytest.raises(JointposeError, match=r"jointpose\[onnx\]") as info:
        Lifter.load(path)
    assert "\n" not in str(info.value)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(JointposeError, match=r"jointpose\[onnx\]"):
        export_onnx(LoadedModel(_model(False)), path)


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A small full-sequence export (27 frames, 25 fps), made once for the metadata tests."""
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxscript") is None:
        pytest.skip("the optional extra jointpose[onnx] is not installed")
    return export_onnx(LoadedModel(_model(False), fps=25.0), tmp_path_factory.mktemp("onnx") / "good.onnx")


def _with_metadata(source, target, **changes):
    """``source`` saved as ``target`` with metadata entries changed (None removes one)."""
    import onnx

    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props} | changes
    del model.metadata_props[:]
    for key, value in props.items():
        if value is not None:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(model, str(target))
    return target


@needs_ort
@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"model_args": "[]"}, "model arguments must be a dict"),
        ({"model_args": '{"num_joints_in": 17, "in_features": 2, "num_joints_out": 17}'}, "'channels' must be"),
        ({"receptive_field": "3000000000"}, "'receptive_field' must be 27, the product"),
        ({"receptive_field": "1"}, "'receptive_field' must be 27"),
        ({"receptive_field": "1e300"}, "'receptive_field' must be 27"),
        ({"fps": '"abc"'}, "metadata 'fps'"),
        ({"fps": "0"}, "metadata 'fps'"),
        ({"fps": "NaN"}, "metadata 'fps'"),
        ({"fps": "[" * 100_000 + "]" * 100_000}, "metadata 'fps' is not valid JSON"),
        ({"keypoints_symmetry": "[[1], [2], [3]]"}, "'keypoints_symmetry' must be two"),
        ({"keypoints_symmetry": "[[100], [200]]"}, "'keypoints_symmetry' must be two"),
        ({"keypoints_symmetry": "[[1, 1], [2, 3]]"}, "'keypoints_symmetry' must be two"),
        ({"keypoints_symmetry": "[[1, 2], [2, 1]]"}, "'keypoints_symmetry' must be two"),
        ({"kind": "foo"}, "'kind' must be sequence or streaming, got 'foo'"),
        ({"kind": None}, "'kind' must be sequence or streaming, got None"),
        ({"skeleton_fit": '"no"'}, "'skeleton_fit' must be true or false"),
        ({"smooth": '"x"'}, "'smooth' is not a number"),
        ({"smooth": "true"}, "'smooth' is not a number"),
        ({"align_2d": '"0.5"'}, "'align_2d' must be a number in"),
        ({"align_2d": "true"}, "'align_2d' must be a number in"),
        ({"normalization": '["screen"]'}, "normalization must be one of"),
        ({"input_layout": '"coco17"'}, "'input_layout' must be one of h36m, coco, blazepose or 'NAME order'"),
        ({"fps": None}, "model metadata lacks 'fps'"),
    ],
)
def test_onnx_metadata_is_checked_as_a_safetensors_models_is(tmp_path, small_export, changes, needle):
    bad = _with_metadata(small_export, tmp_path / "bad.onnx", **changes)
    with pytest.raises(JointposeError, match=f"bad.onnx: .*{needle}") as info:
        Lifter.load(bad)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


@needs_ort
@pytest.mark.parametrize("name", ["smooth", "align_2d"])
def test_a_causal_onnx_export_asking_for_future_frames_is_refused(tmp_path, name):
    causal = export_onnx(LoadedModel(_model(True), fps=25.0), tmp_path / "causal.onnx")
    assert Lifter.load(causal).causal
    bad = _with_metadata(causal, tmp_path / "bad.onnx", **{name: "0.5"})
    with pytest.raises(JointposeError, match=f"bad.onnx: metadata '{name}' is 0.5 for a causal model"):
        Lifter.load(bad)


@needs_ort
def test_an_onnx_export_without_input_layout_loads_as_not_recorded(tmp_path, small_export):
    with_layout = _with_metadata(small_export, tmp_path / "coco.onnx", input_layout='"coco"')
    assert Lifter.load(with_layout).input_layout == "coco"
    assert Lifter.load(_with_metadata(with_layout, tmp_path / "older.onnx", input_layout=None)).input_layout is None


@needs_ort
def test_an_onnx_graph_that_fails_or_breaks_its_metadata_is_one_line(tmp_path, small_export):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    meta = {p.key: p.value for p in onnx.load(str(small_export)).metadata_props}

    def graph(name, nodes, inits=()):
        inp = helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, ["b", "f", 17, 2])
        out = helper.make_tensor_value_info("poses", TensorProto.FLOAT, None)
        model = helper.make_model(
            helper.make_graph(nodes, "g", [inp], [out], initializer=list(inits)),
            opset_imports=[helper.make_opsetid("", 18)],
        )
        model.ir_version = 8
        for key, value in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(tmp_path / name))
        return Lifter.load(tmp_path / name)

    identity = graph("identity.onnx", [helper.make_node("Identity", ["keypoints"], ["poses"])])
    with pytest.raises(
        JointposeError,
        match=r"identity.onnx: the graph gives poses of shape \(2, 56, 17, 2\) where its metadata promise \(2, 30, 17, 3\)",
    ):
        identity.predict(_keypoints(30), SIZE)
    shape = numpy_helper.from_array(np.array([7, 7, 7], np.int64), "shape")
    reshape = graph("reshape.onnx", [helper.make_node("Reshape", ["keypoints", "shape"], ["poses"])], [shape])
    with pytest.raises(JointposeError, match=r"reshape.onnx: the ONNX graph failed to run \(") as info:
        reshape.predict(_keypoints(30), SIZE)
    assert "\n" not in str(info.value)


@needs_ort
def test_an_onnx_graph_that_could_loop_or_allocate_without_bound_is_refused_before_it_runs(
    tmp_path, small_export, capsys
):
    """A few hundred bytes of graph can loop a trillion times (onnxruntime does not return to
    Python, so Ctrl-C could not stop it) or fill ten billion elements: refused on loading,
    before onnxruntime builds the graph, in one line; the exports themselves load."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    exported = onnx.load(str(small_export))
    value = helper.make_tensor_value_info

    def saved(name, nodes, inits=(), external=False):
        graph = helper.make_graph(
            nodes,
            "g",
            [value("keypoints", TensorProto.FLOAT, ["b", "f", 17, 2])],
            [value("poses", TensorProto.FLOAT, None)],
            initializer=list(inits),
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 8
        model.metadata_props.extend(exported.metadata_props)
        if external:
            weights = model.graph.initializer[0]
            weights.data_location = TensorProto.EXTERNAL
            weights.ClearField("raw_data")
            weights.external_data.add(key="location", value="/dev/zero")
        onnx.save(model, str(tmp_path / name))
        return tmp_path / name

    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Identity", ["x"], ["x_out"])],
        "body",
        [value("i", TensorProto.INT64, []), value("c", TensorProto.BOOL, []), value("x", TensorProto.FLOAT, None)],
        [value("c_out", TensorProto.BOOL, []), value("x_out", TensorProto.FLOAT, None)],
    )
    steps = numpy_helper.from_array(np.array(10**12, np.int64), "steps")
    go = numpy_helper.from_array(np.array(True), "go")
    loop = saved(
        "loop.onnx", [helper.make_node("Loop", ["steps", "go", "keypoints"], ["poses"], body=body)], [steps, go]
    )
    shape = numpy_helper.from_array(np.array([100_000, 100_000], np.int64), "shape")
    fill = [
        helper.make_node("ConstantOfShape", ["shape"], ["big"]),
        helper.make_node("Add", ["keypoints", "big"], ["poses"]),
    ]
    filled = saved("fill.onnx", fill, [shape])
    custom = saved("custom.onnx", [helper.make_node("Gelu", ["keypoints"], ["poses"], domain="com.microsoft")])
    weights = numpy_helper.from_array(np.ones(4, np.float32), "w")
    external = saved(
        "external.onnx", [helper.make_node("Add", ["keypoints", "w"], ["poses"])], [weights], external=True
    )
    for path, needle in (
        (loop, "the graph holds operator 'Loop', which no jointpose export does"),
        (filled, "the graph holds operator 'ConstantOfShape'"),
        (custom, "the graph holds operator 'com.microsoft.Gelu'"),
        (external, "the model keeps its weights in other files"),
    ):
        with pytest.raises(JointposeError, match=f"{path.name}: {needle}"):
            Lifter.load(path)
        np.save(tmp_path / "kp.npy", _keypoints(30))
        argv = ["infer", str(tmp_path / "kp.npy"), "--checkpoint", str(path), "-o", str(tmp_path / "out.npz")]
        assert main([*argv, "--image-size", "1000", "1000"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "out.npz").exists()
