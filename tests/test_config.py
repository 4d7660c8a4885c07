"""TrainConfig refuses impossible values itself, naming the field; the CLI's training flags
come from the fields' metadata and name the flag in their one-line errors."""

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from h36m_files import cli
from jointpose.cli import build_parser, flag_message, main, train_config
from jointpose.errors import JointposeError
from jointpose.losses import CONSTRAINT_TERMS, LossWeights
from jointpose.training.config import RUN_FIELDS, TrainConfig, add_arguments, field_flags, from_arguments

ROOT = Path(__file__).resolve().parents[1]

BAD = [
    ("epochs", 0),
    ("epochs", 2.5),
    ("channels", -5),
    ("channels", 0),
    ("architecture", (2,)),
    ("architecture", ()),
    ("architecture", (3, 0)),
    ("architecture", (15, 15, 15, 3)),  # a receptive field of 10125 frames
    ("lr", 0.0),
    ("lr", -1e-3),
    ("lr", float("nan")),
    ("lr_decay", 0.0),
    ("lr_decay", 7.0),
    ("dropout", 1.0),
    ("dropout", 0.9995),  # beyond what the model takes (MAX_DROPOUT): refused here, naming the field
    ("dropout", -0.1),
    ("batch_size", 0),
    ("chunk", 2),
    ("chunk_share", 0.0),
    ("chunk_share", 1.0),
    ("chunk_dropout", "per-frame"),
    ("warmup", -0.1),
    ("warmup", 1.5),
    ("subset", 0.0),
    ("subset", 1.5),
    ("downsample", 0),
    ("keep_last", -1),
    ("precision", "fp8"),
    ("seed", -1),
    ("seed", 2**63),
    ("smooth", -1.0),
    ("smooth", float("inf")),
    ("weights", {"rom": 1.0}),
    ("subjects_train", ()),
    ("subjects_test", ("S9", "")),
    ("actions", ()),
    ("dataset", "humaneva20"),
    ("keypoints", None),
    ("keypoints", ""),
    ("data_dir", 3),
    ("checkpoint_dir", ""),
    ("device", None),
]


@pytest.mark.parametrize("name, value", BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_impossible_values_are_refused_naming_the_field(name, value):
    with pytest.raises(JointposeError) as info:
        TrainConfig(**{"data_dir": "d", "checkpoint_dir": "c", name: value})
    assert info.value.fields == (name,)
    assert str(info.value).startswith(f"{name} must be ") and "--" not in str(info.value)


def test_paths_from_python_are_kept_as_the_strings_the_command_line_gives(h36m_dir, tmp_path):
    """A ``Path`` is stored as its string: the run's checkpoint holds plain values, which the
    safe loader reads back (and evaluation.json is written)."""
    from jointpose.inference.lifter import Lifter
    from jointpose.training.trainer import Trainer

    config = TrainConfig(
        data_dir=Path(h36m_dir), checkpoint_dir=tmp_path / "run", keypoints="gt", subjects_train=["S1"],
        subjects_test=["S9"], architecture=(3,), channels=8, epochs=1, batch_size=512, progress=False,
    )  # fmt: skip
    assert (config.data_dir, config.checkpoint_dir) == (str(h36m_dir), str(tmp_path / "run"))
    config = dataclasses.replace(config, device=torch.device("cpu"))  # a torch.device, as its name
    assert config.device == "cpu"
    Trainer(config).fit()
    assert (tmp_path / "run" / "evaluation.json").is_file()
    assert Lifter.load(tmp_path / "run").receptive_field == 3


def test_limits_themselves_are_accepted():
    TrainConfig(
        data_dir="d",
        checkpoint_dir="c",
        epochs=1,
        channels=1,
        architecture=(1,),
        lr=1e-9,
        lr_decay=1.0,
        dropout=0.0,
        batch_size=1,
        chunk=3,
        chunk_share=0.999,
        warmup=1.0,
        subset=1.0,
        downsample=1,
        keep_last=0,
        seed=2**63 - 1,
        smooth=0.0,
        precision="fp16",
        weights=LossWeights(mpjpe=0.0, rom=1.0),
    )
    TrainConfig(
        data_dir="d", checkpoint_dir="c", epochs=1_000_000, batch_size=65_536, chunk=1024, lr=1.0, downsample=10_000
    )
    # The baseline trains without chunks: any chunk length and share is fine there.
    TrainConfig(data_dir="d", checkpoint_dir="c", constraints=False, chunk=1, chunk_share=0.0)
    with pytest.raises(JointposeError, match=r"chunk must be in \[1, 1024\]"):
        TrainConfig(data_dir="d", checkpoint_dir="c", constraints=False, chunk=0)


def test_switching_the_mode_revalidates():
    baseline = TrainConfig(data_dir="d", checkpoint_dir="c", constraints=False, chunk=2)
    with pytest.raises(JointposeError, match=r"chunk must be in \[3, 1024\] with constraints"):
        dataclasses.replace(baseline, constraints=True)


def test_causal_model_refuses_the_offline_filter():
    with pytest.raises(JointposeError, match="smooth reads future frames, which a causal model") as info:
        TrainConfig(data_dir="d", checkpoint_dir="c", causal=True, smooth=1.0)
    assert info.value.fields == ("smooth", "causal")
    assert flag_message(info.value).startswith("--smooth reads future frames, which a --causal model")


def test_loss_weight_errors_name_the_weight():
    with pytest.raises(JointposeError) as info:
        LossWeights(ang_vel=-1.0)
    assert info.value.fields == ("weights.ang_vel",)
    assert flag_message(info.value) == "--w-ang-vel must be a number in [0, 1000000], got -1.0"


def test_flag_message_writes_the_named_fields_as_flags():
    exc = JointposeError(
        "{0}: {path} has no chunk {1}: {then} vs {now}; {2}",
        fields=("resume", "chunk", "chunk_share"),
        path="/runs/seed/chunk",
        then={"a": 1},
        now=[2],
    )
    assert str(exc) == "resume: /runs/seed/chunk has no chunk chunk: {'a': 1} vs [2]; chunk_share"
    assert flag_message(exc) == "--resume: /runs/seed/chunk has no chunk --chunk: {'a': 1} vs [2]; --chunk-share"
    plain = JointposeError("a {brace} stays: no fields")
    assert str(plain) == flag_message(plain) == "a {brace} stays: no fields"


def test_every_field_has_a_flag_and_the_parser_defaults_are_the_dataclass_defaults():
    flags = field_flags()
    names = {f.name for f in dataclasses.fields(TrainConfig)} | {f"weights.{t}" for t in CONSTRAINT_TERMS}
    switches = set(flags) - names  # a boolean field set away from its default: its switch
    assert names <= set(flags) and {s.partition("=")[0] for s in switches} == {
        f.name for f in dataclasses.fields(TrainConfig) if isinstance(f.default, bool)
    }
    assert flags["constraints=False"] == "--no-constraints" and flags["causal=True"] == "--causal"
    assert train_config(build_parser().parse_args(["train", "--data-dir", "d", "--checkpoint", "c"])) == TrainConfig(
        data_dir="d", checkpoint_dir="c"
    )
    ablate = build_parser().parse_args(["ablate", "--data-dir", "d", "--out", "o"])
    assert not any(hasattr(ablate, name) for name in RUN_FIELDS)
    assert train_config(ablate, checkpoint_dir="o") == TrainConfig(data_dir="d", checkpoint_dir="o")


def test_flags_set_their_fields():
    argv = cli(
        "train",
        "--data-dir d --checkpoint c -d humaneva15 -k gt -str S1,S5 -ste S9 -a Walking -arc 3,5 -ch 16 -drop 0.1 -e 3"
        " -b 64 -lr 0.002 -lrd 0.5 --no-bn-floor --causal --chunk 5 --chunk-share 0.5 --chunk-dropout independent --warmup 0.2"
        " --no-skeleton-fit -no-da -no-tta --resume --seed 4 --subset 0.5 --downsample 2 --keep-last 1 --trajectory"
        " --device cpu --sync-bn --precision bf16 --compile --no-progress --log-steps --w-rom 0.5",
    )
    config = train_config(build_parser().parse_args(argv))
    assert config == TrainConfig(
        data_dir="d",
        checkpoint_dir="c",
        dataset="humaneva15",
        keypoints="gt",
        subjects_train=("S1", "S5"),
        subjects_test=("S9",),
        actions=("Walking",),
        architecture=(3, 5),
        channels=16,
        dropout=0.1,
        epochs=3,
        batch_size=64,
        lr=0.002,
        lr_decay=0.5,
        bn_floor=False,
        causal=True,
        chunk=5,
        chunk_share=0.5,
        chunk_dropout="independent",
        warmup=0.2,
        skeleton_fit=False,
        augment=False,
        test_time_augmentation=False,
        resume=True,
        seed=4,
        subset=0.5,
        downsample=2,
        keep_last=1,
        trajectory=True,
        device="cpu",
        sync_bn=True,
        precision="bf16",
        compile=True,
        progress=False,
        log_steps=True,
        weights=LossWeights(rom=0.5),
    )
    baseline = train_config(
        build_parser().parse_args(["train", "--data-dir", "d", "--checkpoint", "c", "--no-constraints"])
    )
    assert baseline.constraints is False and baseline.weights is None


def test_no_flag_is_taken_for_its_abbreviation(capsys):
    """--lr is the learning rate (as -lr and --learning-rate), not the start of --lr-decay; a
    prefix of a flag is refused rather than read as the flag."""
    base = "--data-dir d --checkpoint c"
    config = train_config(build_parser().parse_args(cli("train", base + " --lr 0.001")))
    assert (config.lr, config.lr_decay) == (0.001, TrainConfig(data_dir="d", checkpoint_dir="c").lr_decay)
    for prefix in ("--lr-d 0.5", "--epoch 3", "--learning 0.1"):
        with pytest.raises(SystemExit):
            main(cli("train", f"{base} {prefix}"))
        assert capsys.readouterr().err == (
            f"jointpose train: error: unrecognized arguments: {prefix} (see 'jointpose train --help')\n"
        )


def _help_imports(argv: list[str], help: bool = True) -> tuple[str, bool, bool]:
    """``jointpose ARGV --help`` (``ARGV`` alone unless ``help``) in a fresh interpreter: its
    output, and whether it imported PyTorch and SciPy."""
    code = (
        "import sys\nfrom jointpose.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'scipy' in sys.modules)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, *argv, *["--help"] * help], capture_output=True, text=True, check=True
    )
    *text, modules = run.stdout.splitlines()
    text += run.stderr.splitlines()
    torch_loaded, scipy_loaded = (word == "True" for word in modules.split())
    return "\n".join(text), torch_loaded, scipy_loaded


def test_help_builds_only_the_verb_asked_for():
    """``jointpose --help``, a verb whose flags need neither, and ``export --help`` (its bundled
    models listed) answer without PyTorch or SciPy, each listing what the whole parser lists."""
    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    cases = {(): parser.format_help(), ("export",): verbs["export"].format_help()}
    cases[("--threads", "2", "data", "--debug", "build")] = verbs["data"]._actions[-1].choices["build"].format_help()
    cases[("render",)] = verbs["render"].format_help()
    for argv, expected in cases.items():
        text, torch_loaded, scipy_loaded = _help_imports(list(argv))
        assert text == expected.rstrip("\n") and "usage: jointpose" in text, argv
        assert not torch_loaded and (not scipy_loaded or argv[-1:] == ("build",)), argv
    text, torch_loaded, _ = _help_imports(["infer"])
    assert text == verbs["infer"].format_help().rstrip("\n") and not torch_loaded
    # An error found before the work names its flag without PyTorch too.
    text, torch_loaded, _ = _help_imports(["data", "build", "--bvh", "/nonexistent-folder", "--out", "o"], help=False)
    assert text == "jointpose data build: error: --bvh: directory not found: /nonexistent-folder" and not torch_loaded
    text, torch_loaded, _ = _help_imports(["infer", "/nonexistent.npz", "-o", "o.npz"], help=False)
    assert text == "jointpose infer: error: keypoint file not found: /nonexistent.npz" and not torch_loaded


def test_debug_and_threads_work_before_and_after_each_word_of_the_verb(tmp_path, capsys):
    """``--debug`` and ``--threads`` are read before the verb, after it, and between ``data`` and
    its action; errors name the verb run, whatever comes before it."""
    import torch

    build = ["--bvh", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]
    threads = torch.get_num_threads()
    try:
        for argv in (["data", "--threads", "1", "build"], ["--threads", "1", "data", "build"], ["data", "build"]):
            assert main(argv + build + ["--threads", "1"] * (argv == ["data", "build"])) == 2, argv
            assert capsys.readouterr().err.startswith("jointpose data build: error: --bvh: directory not found"), argv
            assert torch.get_num_threads() == 1
        for argv in (["data", "--debug", "build"], ["--debug", "data", "build"], ["data", "build", "--debug"]):
            with pytest.raises(JointposeError, match="bvh"):
                main(argv + build)
        assert main(["--threads", "0", "data", "build"] + build) == 2
        assert capsys.readouterr().err.startswith("jointpose data build: error: --threads 0: give a whole number")
        assert main(["--threads", "1", "train", "--random-cameras", "x", "--data-dir", "d", "--checkpoint", "c"]) == 2
        assert capsys.readouterr().err.startswith("jointpose train: error: --random-cameras")
    finally:
        torch.set_num_threads(threads)


def test_the_library_helpers_build_a_config_without_the_cli():
    parser = argparse.ArgumentParser()
    add_arguments(parser, skip=())
    config = from_arguments(parser.parse_args(["--data-dir", "d", "--checkpoint", "c", "-e", "2"]))
    assert config == TrainConfig(data_dir="d", checkpoint_dir="c", epochs=2)
    with pytest.raises(JointposeError, match=r"^epochs must be in \[1, 1000000\], got 0$"):
        from_arguments(parser.parse_args(["--data-dir", "d", "--checkpoint", "c", "-e", "0"]))
    for script in [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")]:
        assert "jointpose.cli" not in script.read_text(), script.name


@pytest.mark.parametrize(
    "flags, line",
    [
        (["-e", "0"], "-e must be in [1, 1000000], got 0"),
        (["-e", "2000000"], "-e must be in [1, 1000000], got 2000000"),
        (["-b", "1" + "0" * 400], "-b must be an integer of magnitude below 2**63, got 401 digits"),
        (["-arc", "2"], "-arc must be odd filter widths >= 1, got 2"),
        (["-lrd", "7"], "-lrd must be in (0, 1], got 7.0"),
        (["--w-sym", "-1"], "--w-sym must be a number in [0, 1000000], got -1.0"),
        (["--precision", "bf16", "--keep-last", "-2"], "--keep-last must be >= 0, got -2"),
    ],
)
def test_cli_names_the_flag_on_one_line(tmp_path, capsys, flags, line):
    assert main(["train", "--data-dir", str(tmp_path), "--checkpoint", str(tmp_path / "c"), *flags]) == 2
    assert capsys.readouterr().err == f"jointpose train: error: {line}\n"
    assert not (tmp_path / "c").exists()


def test_testing_on_a_training_person_is_noted(tmp_path):
    """The Trainer warns, before reading any data, naming the fields in Python and the flags
    on the command line."""
    import warnings

    from jointpose.errors import JointposeWarning
    from jointpose.training.trainer import Trainer

    def trainer(train: tuple[str, ...], test: tuple[str, ...]) -> None:
        config = TrainConfig(data_dir=str(tmp_path / "none"), checkpoint_dir=str(tmp_path / "ck"))
        with pytest.raises(JointposeError, match="data_dir: directory not found"):
            Trainer(dataclasses.replace(config, subjects_train=train, subjects_test=test))

    with pytest.warns(JointposeWarning) as caught:
        trainer(("S1", "S5"), ("S5", "S9", "S1"))
    assert [str(w.message) for w in caught] == [
        "subjects_test S5,S1: also in subjects_train; scores on people the model trained on say nothing about new "
        "people (hold them out: docs/validation.md)"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer(("S1", "S5"), ("S9",))  # held out: silent
    argv = ["train", "--data-dir", str(tmp_path / "none"), "--checkpoint", str(tmp_path / "ck"), "-str", "S1,S5"]
    run = subprocess.run([sys.executable, "-m", "jointpose", *argv, "-ste", "S5,S9,S1"], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.splitlines() == [
        "warning: -ste S5,S1: also in -str; scores on people the model trained on say nothing about new people "
        "(hold them out: docs/validation.md)",
        f"jointpose train: error: --data-dir: directory not found: {tmp_path / 'none'}",
    ]


def test_settings_a_run_cannot_act_on_are_noted(tmp_path):
    """The Trainer warns, before reading any data, naming the fields in Python and the flags
    on the command line."""
    import warnings

    import torch

    from jointpose.training.config import IdleSettingsWarning
    from jointpose.training.distributed import DistContext
    from jointpose.training.trainer import Trainer

    config = TrainConfig(data_dir=str(tmp_path / "none"), checkpoint_dir=str(tmp_path / "ck"), constraints=False)
    with pytest.warns(IdleSettingsWarning) as caught, pytest.raises(JointposeError, match="data_dir: directory"):
        Trainer(dataclasses.replace(config, weights=LossWeights(sym=2.0), chunk=8))
    assert [str(w.message) for w in caught] == ["chunk, weights: no effect with constraints=False"]
    with warnings.catch_warnings(), pytest.raises(JointposeError, match="data_dir: directory"):
        warnings.simplefilter("error")
        Trainer(config)  # the defaults: silent
    with warnings.catch_warnings(), pytest.raises(JointposeError, match="data_dir: directory"):
        warnings.simplefilter("error")  # under torchrun, rank 0 alone warns
        Trainer(dataclasses.replace(config, chunk=8), DistContext(1, 2, 0, torch.device("cpu")))
    argv = ["train", "--data-dir", str(tmp_path / "none"), "--checkpoint", str(tmp_path / "ck"), "--no-constraints"]
    run = subprocess.run([sys.executable, "-m", "jointpose", *argv, "--w-sym", "2"], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.splitlines() == [
        "warning: --w-*: no effect with --no-constraints",
        f"jointpose train: error: --data-dir: directory not found: {tmp_path / 'none'}",
    ]


def test_lists_from_python_are_the_tuples_of_the_command_line():
    config = TrainConfig(data_dir="d", checkpoint_dir="c", subjects_train=["S1", "S5"], architecture=[3, 3])
    assert config == TrainConfig(data_dir="d", checkpoint_dir="c", subjects_train=("S1", "S5"), architecture=(3, 3))
    with pytest.raises(JointposeError, match=r"subjects_train must be a non-empty tuple .*, got \(\)"):
        TrainConfig(data_dir="d", checkpoint_dir="c", subjects_train=[])


def test_numbers_from_numpy_or_fractions_are_kept_as_python_numbers(h36m_dir, tmp_path):
    """numpy's scalars and a Fraction are numbers a Python user passes; the run's checkpoint
    holds them as plain JSON values, which the safe loader reads back."""
    import json
    from fractions import Fraction

    import numpy as np

    from jointpose.inference.lifter import Lifter
    from jointpose.training.trainer import Trainer

    config = TrainConfig(
        data_dir=h36m_dir,
        checkpoint_dir=tmp_path / "run",
        keypoints="gt",
        subjects_train=np.array(["S1"]),
        subjects_test=["S9"],
        architecture=(np.int64(3),),
        channels=np.int32(8),
        epochs=np.int64(1),
        lr=np.float32(0.003),
        lr_decay=Fraction(9, 10),
        dropout=np.float16(0.25),
        augment=np.bool_(False),
        weights=LossWeights(vel=np.float32(0.5)),
        progress=False,
    )
    values = config.to_dict()
    assert json.loads(json.dumps(values)) == values
    assert (type(config.lr), type(config.lr_decay), type(config.channels), config.architecture) == (
        float,
        float,
        int,
        (3,),
    )
    assert config.augment is False and type(config.weights.vel) is float and config.subjects_train == ("S1",)
    trainer = Trainer(config)
    for until in (-1, 0, "2", True):
        with pytest.raises(JointposeError, match=f"^until_epoch must be an epoch number >= 1, got {until!r}$"):
            trainer.fit(until_epoch=until)
    trainer.fit()
    assert Lifter.load(tmp_path / "run").model.channels == 8
    with pytest.raises(JointposeError, match=r"^weights.vel must be a number in \[0, 1000000\], got True$"):
        LossWeights(vel=True)
