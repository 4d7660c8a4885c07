"""Property tests (hypothesis) for losses, metrics, flipping and the restricted unpickler."""

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jointpose.evaluation.metrics import POSE_METRICS, mpjpe, p_mpjpe
from jointpose.evaluation.plausibility import plausibility_errors
from jointpose.geometry import skeleton
from jointpose.losses import TERMS, JointAwareLoss, LossWeights
from jointpose.safeio import restricted_loads

finite = st.floats(min_value=-5.0, max_value=5.0, allow_nan=False, width=32)
poses = arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 6), st.just(17), st.just(3)), elements=finite)


@settings(max_examples=60, deadline=None)
@given(poses, st.data())
def test_losses_are_finite_with_finite_gradients(pred, data):
    target = data.draw(arrays(np.float32, pred.shape, elements=finite))
    x = torch.tensor(pred, requires_grad=True)
    weights = LossWeights(**{name: 1.0 for name in TERMS})
    total, terms = JointAwareLoss(weights)(x, torch.tensor(target))
    total.backward()
    assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
    assert torch.isfinite(x.grad).all()


@settings(max_examples=60, deadline=None)
@given(poses, st.data())
def test_metrics_are_finite(pred, data):
    target = torch.tensor(data.draw(arrays(np.float32, pred.shape, elements=finite)))
    pred = torch.tensor(pred)
    for name, fn in POSE_METRICS.items():
        assert torch.isfinite(fn(pred, target)).all(), name
    for name, values in plausibility_errors(pred[0], target[0]).items():
        assert torch.isfinite(values).all(), name


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (4, 17, 3), elements=st.floats(-2, 2)),
    st.floats(0.2, 5.0),
    arrays(np.float64, (4,), elements=st.floats(-1, 1)),
    arrays(np.float64, (3,), elements=st.floats(-10, 10)),
)
def test_p_mpjpe_is_invariant_to_similarity_transforms(pred, scale, quaternion, shift):
    from scipy.spatial.transform import Rotation

    if np.linalg.norm(quaternion) < 1e-3 or np.ptp(pred, axis=1).max(axis=-1).min() < 1e-2:
        return  # no rotation defined / a degenerate frame (all joints within 1 cm: e.g. one at 1e-300)
    target = pred + np.random.default_rng(0).normal(0, 0.05, pred.shape)
    rotation = Rotation.from_quat(quaternion).as_matrix()
    moved = scale * pred @ rotation.T + shift
    base = p_mpjpe(torch.tensor(pred), torch.tensor(target))
    assert torch.allclose(p_mpjpe(torch.tensor(moved), torch.tensor(target)), base, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(poses)
def test_p1_of_identical_inputs_is_zero(pred):
    x = torch.tensor(pred)
    assert float(mpjpe(x, x).abs().max()) == 0.0


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.just(17), st.sampled_from([2, 3])), elements=finite))
def test_flip_twice_is_identity(points):
    assert np.array_equal(skeleton.flip_poses(skeleton.flip_poses(points)), points)
    tensor = torch.tensor(points)
    assert torch.equal(skeleton.flip_poses(skeleton.flip_poses(tensor)), tensor)


DANGEROUS = [
    ("os", "system"),
    ("posix", "system"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("subprocess", "Popen"),
    ("builtins", "__import__"),
    ("shutil", "rmtree"),
    ("builtins", "open"),
]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DANGEROUS), st.lists(st.integers(-5, 5), max_size=4), st.sampled_from([0, 2, 3]))
def test_restricted_unpickler_refuses_dangerous_globals(target, prefix, protocol):
    """A well-formed pickle calling a dangerous global with no arguments (so that a call, if
    the allowlist let one through, would raise TypeError, not run anything), after some
    plain values: refused by name, and by nothing else."""
    module, name = target
    values = pickle.dumps(prefix, protocol=max(protocol, 2))[2:-1] + b"0"  # push the list, POP it
    stream = ((b"\x80" + bytes([protocol])) if protocol else b"") + values + f"c{module}\n{name}\n".encode() + b")R."
    with pytest.raises(pickle.UnpicklingError, match=rf"refusing to load global '{module}\.{name}'"):
        restricted_loads(stream)


ALLOWED = (dict, list, tuple, str, bytes, int, float, bool, complex, type(None), bytearray, set, frozenset)


def plain_values(protocol: int) -> st.SearchStrategy:
    """Nested plain data whose pickle at ``protocol`` needs no global: bytes have their own
    opcodes from protocol 3 and frozensets from 4 (before, they are spelt with the globals
    ``builtins.bytes`` / ``builtins.frozenset``, outside the allowlist and refused by name)."""
    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    if protocol >= 3:
        leaves = leaves | st.binary(max_size=8)
    if protocol >= 4:
        leaves = leaves | st.frozensets(st.integers(), max_size=3)
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.tuples(inner, inner)
            | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        ),
        max_leaves=12,
    )


def _only_plain(value, seen: frozenset = frozenset()) -> bool:
    """Whether ``value`` and everything inside it is plain data or a numpy array/scalar/dtype.
    A changed byte can make a list hold itself (a memo reference): each container is checked
    once on a path (``seen``: the ids above it)."""
    if isinstance(value, (np.ndarray, np.generic, np.dtype)):
        return value.dtype != object if isinstance(value, np.ndarray) else True
    if isinstance(value, (dict, list, tuple, set, frozenset)) and id(value) in seen:
        return True
    inner = seen | {id(value)}
    if isinstance(value, dict):
        return all(_only_plain(k, inner) and _only_plain(v, inner) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_only_plain(v, inner) for v in value)
    return isinstance(value, ALLOWED)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, pickle.HIGHEST_PROTOCOL), st.data())
def test_restricted_unpickler_loads_plain_data_as_pickle_does(protocol, data):
    value = data.draw(plain_values(protocol))
    assert restricted_loads(pickle.dumps(value, protocol=protocol)) == value


@settings(max_examples=300, deadline=None)
@given(st.integers(0, pickle.HIGHEST_PROTOCOL), st.data())
def test_restricted_unpickler_only_builds_plain_data(protocol, data):
    """A valid pickle of plain data (or an array) with one byte changed: it loads as plain data
    or is refused with ``UnpicklingError``; nothing else comes out, nothing else is raised."""
    array = arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 3)), elements=finite)
    value = data.draw(plain_values(protocol) | array)
    stream = bytearray(pickle.dumps(value, protocol=protocol))
    position = data.draw(st.integers(0, len(stream) - 1))
    stream[position] = data.draw(st.integers(0, 255))
    try:
        loaded = restricted_loads(bytes(stream))
    except pickle.UnpicklingError:  # the one refusal it raises; anything else fails the test
        return
    assert _only_plain(loaded)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_stream_stopped_early_leaves_none_of_the_unpicklers_callables(protocol):
    """A STOP written over any byte of an array's pickle: what loads is plain data or refused.
    Stopped right after numpy's _reconstruct is pushed, the load returned the unpickler's own
    wrapper function (found by the fuzzing test above)."""
    stream = pickle.dumps(np.zeros((1, 1), np.float32), protocol=protocol)
    refused = 0
    for position in range(len(stream)):
        try:
            loaded = restricted_loads(stream[:position] + pickle.STOP + stream[position + 1 :])
        except pickle.UnpicklingError:
            refused += 1
            continue
        assert _only_plain(loaded), (position, loaded)
    assert refused > 0
    for stream in (b"cnumpy._core.multiarray\n_reconstruct\n.", b"(cnumpy\ndtype\nl."):  # alone, in a list
        with pytest.raises(pickle.UnpicklingError, match="refusing a pickle that loads as function, not plain data"):
            restricted_loads(stream)


def test_refusal_names_the_global():
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        restricted_loads(b"cos\nsystem\n(S'true'\ntR.")
