"""README's code is the code that runs: its example executes, and CI runs its test command; the
CLI reference names every flag."""

import json
import re
from pathlib import Path

import numpy as np

from test_keypoints import coco_entry, person

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    (command,) = [block.strip() for block in _blocks("bash") if "pytest" in block]
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_readme_python_example_runs(tmp_path, monkeypatch):
    from jointpose import Lifter

    (example,) = _blocks("python")
    frames = 40  # a person walking across a 1920x1080 image, as a COCO detector reports it
    detections = [coco_entry(1000 + f, person(f, 2.0, (900.0, 600.0), (3.0, 0.0)), 0.9, 0.95) for f in range(frames)]
    (tmp_path / "detections.json").write_text(json.dumps(detections))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)

    poses, kp = namespace["poses"], namespace["kp"]
    assert kp.xy.shape == (frames, 17, 2)
    assert poses.shape == (frames, 17, 3) and np.isfinite(poses).all()
    assert np.array_equal(poses[:, 0], np.zeros((frames, 3)))
    # The detector's confidence and layout reached the alignment with the 2D (limbs only).
    assert kp.source_layout == "coco17"
    expected = Lifter.from_pretrained().predict(kp.points, camera=namespace["camera"], source_layout="coco17")
    assert np.array_equal(poses, expected)
    # The streamed pose of the last frame equals the causal model run on the whole sequence.
    causal = Lifter.from_pretrained("causal", device="cpu")
    causal.flip_test = False
    whole = causal.predict(kp.xy, camera=namespace["camera"])
    assert np.allclose(namespace["pose"], whole[-1], atol=1e-3)  # metres


def test_every_flag_of_every_verb_is_in_the_cli_reference():
    import argparse

    from jointpose.cli import VERBS, build_parser

    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = []
    parsers = [("", build_parser(list(VERBS)))]
    while parsers:
        name, parser = parsers.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += [(f"{name} {verb}".strip(), sub) for verb, sub in action.choices.items()]
            missing += [
                f"{name} {flag}"
                for flag in action.option_strings
                if flag not in ("-h", "--help")
                and not re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", reference)
            ]
    assert not missing, f"flags missing from docs/cli.md: {missing}"


def test_no_merge_conflict_markers_in_text_files():
    """A merge left half-resolved shows as lines of <<<<<<<, ======= or >>>>>>>."""
    markers = re.compile(r"^(<{7}( .*)?|={7}|>{7}( .*)?)$")
    text = [p for pattern in ("*.md", "*.py", "*.toml", "*.yml", "*.cfg") for p in ROOT.glob(pattern)]
    text += [
        p for folder in ("src", "tests", "docs", "benchmarks", "scripts", ".ci") for p in (ROOT / folder).rglob("*")
    ]
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in text
        if path.is_file() and path.suffix in (".md", ".py", ".toml", ".yml", ".cfg", "")
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if markers.match(line)
    ]
    assert not found, found
