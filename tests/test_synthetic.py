import numpy as np
import torch

from jointpose.geometry.anatomy import rom_violation
from jointpose.geometry.bones import bone_vectors
from jointpose.motion.synthetic import MOTIONS, generate


def test_synthetic_motion_is_plausible():
    motion = generate(["S1", "S5", "S6"], seconds=3.0, seed=4)
    assert len(MOTIONS) >= 5 and all(len(actions) == len(MOTIONS) for actions in motion.values())
    sizes = []
    for subject, actions in motion.items():
        for action, poses in actions.items():
            lengths = np.linalg.norm(bone_vectors(poses), axis=-1)
            assert lengths.std(axis=0).max() < 1e-9, (subject, action)  # bones keep their lengths
            assert float(rom_violation(torch.from_numpy(poses)).max()) == 0.0, (subject, action)
            assert abs(poses[:, [3, 6], 2].min()) < 1e-9  # the lower foot is on the floor
            assert np.isfinite(poses).all()
        sizes.append(lengths[0].sum())
    assert np.ptp(sizes) > 0.05  # subjects differ in size
    # Locomotion travels, other motions stay in place; all stay in a 5 m capture area.
    walk = motion["S1"]["Walking 1"][:, 0, :2]
    assert np.ptp(walk, axis=0).max() > 1.0 and np.abs(walk).max() < 2.5


def test_seeded():
    a = generate(["S1"], seconds=1.0, seed=9)
    b = generate(["S1"], seconds=1.0, seed=9)
    c = generate(["S1"], seconds=1.0, seed=10)
    assert all(np.array_equal(a["S1"][k], b["S1"][k]) for k in a["S1"])
    assert not np.array_equal(a["S1"]["Walking 1"], c["S1"]["Walking 1"])
