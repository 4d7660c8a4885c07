"""The package layout shows the pipeline: no import cycles, and no module imports a later stage."""

import ast
from pathlib import Path

import jointpose

PACKAGE = Path(jointpose.__file__).parent

# Stages in pipeline order; a module may import its own stage or an earlier one.
STAGES = [
    "errors",
    "safeio",
    "geometry",
    "data",
    "motion",
    "model",
    "losses",
    "evaluation",
    "training",
    "inference",
    "render",
    "app",
]
APP = {"cli", "demo", "__main__", "__init__"}


def stage_of(module: str) -> str:
    """``jointpose.geometry.cameras`` -> ``geometry``; the command-line front end -> ``app``."""
    first = module.split(".")[1] if "." in module else "__init__"
    return "app" if first in APP else first


def imports_of(path: Path) -> list[str]:
    """Every ``jointpose`` module that ``path`` imports, at module level or inside functions
    (``TYPE_CHECKING`` blocks included: they are imports a reader follows too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path.name}: relative import; use absolute jointpose.* imports")
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jointpose":
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "jointpose"]
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_every_module_belongs_to_a_known_stage():
    unknown = sorted(m for m in MODULES if stage_of(m) not in STAGES)
    assert not unknown, f"modules outside the stages {STAGES}: {unknown}"


def test_no_module_imports_a_later_stage():
    upward = []
    for name, path in MODULES.items():
        if stage_of(name) == "app":
            continue
        for target in imports_of(path):
            if STAGES.index(stage_of(target)) > STAGES.index(stage_of(name)):
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that run back up the pipeline:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = {name: {t for t in imports_of(path) if t in MODULES and t != name} for name, path in MODULES.items()}
    graph["jointpose"] = set()  # the package's lazy public names are not imports at load time
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_checker_sees_a_violation(tmp_path):
    """The stage rule would catch a geometry module importing training."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from jointpose.training.trainer import Trainer\n")
    assert STAGES.index(stage_of(imports_of(bad)[0])) > STAGES.index(stage_of("jointpose.geometry.bad"))


def test_public_api_at_the_top_level():
    from jointpose import (
        JointAwareLoss,
        Keypoints2D,
        Lifter,
        LossWeights,
        StreamingLifter,
        TemporalModel,
        TrainConfig,
        Trainer,
        evaluate_checkpoint,
        evaluate_model,
        export,
        inference_settings,
        lift_video,
        load_dataset,
        load_keypoints,
    )

    for obj in (
        JointAwareLoss,
        Keypoints2D,
        Lifter,
        LossWeights,
        StreamingLifter,
        TemporalModel,
        TrainConfig,
        Trainer,
        evaluate_checkpoint,
        evaluate_model,
        export,
        inference_settings,
        lift_video,
        load_dataset,
        load_keypoints,
    ):
        assert obj.__name__ in jointpose.__all__ and getattr(jointpose, obj.__name__) is obj
