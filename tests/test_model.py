"""The NRRN network against DESIGN.md's equations, computed independently with numpy."""

import numpy as np
import pytest
import torch

from napari_nrrn.model.nrrn import NRRN, SIGMOID_GAIN, TANH_GAIN


def conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Cross-correlation with a 3x3 kernel and zero padding 1, written out: (Cin, H, W) -> (Cout, H, W)."""
    channels_in, height, width = x.shape
    padded = np.zeros((channels_in, height + 2, width + 2))
    padded[:, 1:-1, 1:-1] = x
    out = np.zeros((weight.shape[0], height, width))
    for o in range(weight.shape[0]):
        out[o] = bias[o]
        for i in range(channels_in):
            for dy in range(3):
                for dx in range(3):
                    out[o] += weight[o, i, dy, dx] * padded[i, dy : dy + height, dx : dx + width]
    return out


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def attended_channel0(features):
    return features[0] * sigmoid(features.max(axis=0))


def reference_forward(params: dict, neighbour: np.ndarray, centre: np.ndarray, depth: int):
    """DESIGN.md section 1 step by step: returns ([y_1 .. y_K], tail term, output)."""

    def conv(name, x):
        return conv3x3(x, params[f"{name}.weight"], params[f"{name}.bias"])

    memory = np.maximum(conv("stem", neighbour[None]), 0)
    signal = np.maximum(conv("stem", centre[None]), 0)
    estimate = centre.astype(np.float64)
    estimates = []
    for k in range(depth):
        block = f"blocks.{k}"
        p = np.tanh(conv("memory_conv", memory))
        r = sigmoid(conv(f"{block}.reset_memory", p) + conv(f"{block}.reset_signal", signal))
        z = sigmoid(conv(f"{block}.update_memory", p) + conv(f"{block}.update_signal", signal))
        candidate = np.tanh(
            conv(f"{block}.candidate_signal", signal) + r * conv(f"{block}.candidate_memory", p)
        )
        hidden = z * p + (1 - z) * candidate
        memory = p
        estimate = estimate + attended_channel0(hidden)
        estimates.append(estimate)
        signal = hidden.copy()
        signal[0] = np.tanh(estimate)
    tail_term = attended_channel0(conv("tail", np.maximum(signal, 0)))
    return estimates, tail_term, estimate + tail_term


def hand_set_model(depth: int, width: int, every_depth: bool = False) -> NRRN:
    """An NRRN whose every weight is set by a fixed rule, no random numbers: 0.3 * sin(1.7 index + offset)."""
    model = NRRN(depth=depth, width=width, every_depth=every_depth)
    with torch.no_grad():
        for offset, parameter in enumerate(model.parameters()):
            index = torch.arange(parameter.numel(), dtype=torch.float64)
            parameter.copy_((0.3 * torch.sin(index * 1.7 + offset)).reshape(parameter.shape))
    return model.eval()


@pytest.mark.parametrize("depth", [1, 2])
def test_output_and_block_outputs_match_the_equations_on_a_3x3_image(depth):
    model = hand_set_model(depth=depth, width=2)
    neighbour = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-2.0, 1.0, 0.25]])
    centre = np.array([[1.0, 0.5, -1.5], [0.0, 2.0, 1.0], [-1.0, -0.5, 0.75]])
    params = {k: v.double().numpy() for k, v in model.state_dict().items()}
    estimates, tail_term, expected = reference_forward(params, neighbour, centre, depth)

    x = torch.tensor(np.stack([neighbour, centre])[None], dtype=torch.float32)
    with torch.no_grad():
        output = model(x)[0, 0].double().numpy()
        blocks = [y[0, 0].double().numpy() for y in model.block_outputs(x)]
    np.testing.assert_allclose(output, expected, atol=1e-5)
    assert len(blocks) == depth
    for got, want in zip(blocks, estimates, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    # The full output is y_K plus the tail's attended channel 0.
    np.testing.assert_allclose(output, blocks[-1] + tail_term, atol=1e-5)
    # The reference itself is not trivial: every block and the tail change the image.
    assert np.abs(tail_term).min() > 1e-3
    assert np.abs(estimates[0] - centre).min() > 1e-3


def test_cut_returns_the_per_block_outputs():
    torch.manual_seed(0)
    model = NRRN(depth=3, width=4).eval()
    x = torch.randn(2, 2, 20, 24)
    with torch.no_grad():
        blocks = model.block_outputs(x)
        for k in (1, 2):
            torch.testing.assert_close(model.cut(k)(x), blocks[k - 1], rtol=0, atol=1e-6)
        torch.testing.assert_close(model.cut(3)(x), model(x), rtol=0, atol=0)
    assert model.cut(2).tail is None and model.cut(3).tail is not None
    with pytest.raises(ValueError, match="choose 1..3"):
        model.cut(4)
    with pytest.raises(ValueError, match="at least 1"):
        NRRN(depth=0)


def test_cut_of_an_every_depth_model_is_the_first_blocks_and_the_tail():
    model = hand_set_model(depth=3, width=2, every_depth=True)
    neighbour = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-2.0, 1.0, 0.25]])
    centre = np.array([[1.0, 0.5, -1.5], [0.0, 2.0, 1.0], [-1.0, -0.5, 0.75]])
    params = {k: v.double().numpy() for k, v in model.state_dict().items()}
    x = torch.tensor(np.stack([neighbour, centre])[None], dtype=torch.float32)
    with torch.no_grad():
        depth_outputs = [z[0, 0].double().numpy() for z in model.depth_outputs(x)]
        block_outputs = [y[0, 0].double().numpy() for y in model.block_outputs(x)]
        for k in (1, 2, 3):
            cut = model.cut(k)
            assert cut.config() == {"depth": k, "width": 2, "tail": True, "every_depth": True}
            # z_k = y_k + T(relu(X_k))[0] * sigmoid(max over channels of T(relu(X_k))): the reference run for
            # k blocks, whose tail reads the signal stream after block k.
            estimates, tail_term, expected = reference_forward(params, neighbour, centre, depth=k)
            np.testing.assert_allclose(cut(x)[0, 0].double().numpy(), expected, atol=1e-5)
            np.testing.assert_allclose(depth_outputs[k - 1], expected, atol=1e-5)
            # block_outputs keeps the published meaning: y_k, without the tail.
            np.testing.assert_allclose(block_outputs[k - 1], estimates[-1], atol=1e-5)
            assert np.abs(tail_term).min() > 1e-3
        np.testing.assert_array_equal(depth_outputs[-1], model(x)[0, 0].double().numpy())
    with pytest.raises(ValueError, match="choose 1..3"):
        model.cut(0)
    with pytest.raises(ValueError, match="needs tail=True"):
        NRRN(depth=2, width=4, tail=False, every_depth=True)


def test_depth_outputs_are_what_each_cut_returns_in_one_pass():
    torch.manual_seed(3)
    x = torch.randn(2, 2, 18, 22)
    for every_depth in (False, True):
        model = NRRN(depth=3, width=4, every_depth=every_depth).eval()
        with torch.no_grad():
            depths = model.depth_outputs(x)
            blocks = model.block_outputs(x)
            assert len(depths) == 3
            for k in (1, 2, 3):
                torch.testing.assert_close(depths[k - 1], model.cut(k)(x), rtol=0, atol=1e-6)
            # An old-style model's cuts are its per-block estimates, then the full output.
            if not every_depth:
                torch.testing.assert_close(depths[:2], blocks[:2], rtol=0, atol=0)
            else:
                assert (depths[0] - blocks[0]).abs().min() > 0
            torch.testing.assert_close(depths[2], model(x), rtol=0, atol=0)


@pytest.mark.parametrize(("depth", "tail"), [(1, True), (3, True), (2, False)])
def test_halo_is_the_exact_receptive_field(depth, tail):
    torch.manual_seed(1)
    model = NRRN(depth=depth, width=4, tail=tail).eval()
    x = torch.randn(1, 2, 31, 31)
    bumped = x.clone()
    bumped[0, :, 15, 15] += 3.0
    with torch.no_grad():
        changed = (model(bumped) - model(x))[0, 0].abs() > 0
    rows, columns = np.nonzero(changed.numpy())
    reach = max(np.abs(rows - 15).max(), np.abs(columns - 15).max())
    assert reach == model.halo == 1 + (depth + 1) + int(tail)


def test_gate_weights_are_orthogonal_with_the_published_gains():
    torch.manual_seed(2)
    width = 8
    model = NRRN(depth=2, width=width)
    gains = {
        "reset_memory": SIGMOID_GAIN,
        "reset_signal": SIGMOID_GAIN,
        "update_memory": SIGMOID_GAIN,
        "update_signal": SIGMOID_GAIN,
        "candidate_memory": TANH_GAIN,
        "candidate_signal": TANH_GAIN,
    }
    assert TANH_GAIN == pytest.approx(5 / 3) and SIGMOID_GAIN == 1
    for block in model.blocks:
        for name, gain in gains.items():
            rows = getattr(block, name).weight.detach().reshape(width, -1).double()
            # C rows of length 9C: orthogonal rows of norm `gain`.
            torch.testing.assert_close(
                rows @ rows.T, gain**2 * torch.eye(width, dtype=torch.float64), atol=1e-5, rtol=0
            )
    # E, S, T keep PyTorch's default initialisation: not orthogonal.
    stem_rows = model.memory_conv.weight.detach().reshape(width, -1).double()
    assert not torch.allclose(stem_rows @ stem_rows.T, torch.eye(width, dtype=torch.float64), atol=0.1)
