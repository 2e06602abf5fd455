"""The consensus Noise2Noise loss: its formula on hand values, and the identity that justifies it."""

import numpy as np
import pytest
import torch

from napari_nrrn.model.loss import consensus_loss


def test_formula_on_hand_values():
    f1 = torch.tensor([[1.0, 2.0]])
    f2 = torch.tensor([[3.0, 0.0]])
    prev = torch.tensor([[0.0, 1.0]])
    next_ = torch.tensor([[2.0, 2.0]])
    # MSE(f1, next) = (1 + 0) / 2 = 0.5; MSE(f2, prev) = (9 + 1) / 2 = 5; MSE(f1, f2) = (4 + 4) / 2 = 4
    expected = 0.5 * 0.5 + 0.5 * 5.0 - 0.25 * 4.0
    assert consensus_loss(f1, f2, prev, next_).item() == pytest.approx(expected)


def test_each_branch_is_trained_toward_the_slice_it_did_not_see():
    prev, next_ = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    # f1 = f(prev, centre) matching next and f2 = f(next, centre) matching prev is the swapped case.
    swapped = consensus_loss(next_.clone(), prev.clone(), prev, next_)
    assert swapped.item() == pytest.approx(-0.25)
    assert consensus_loss(prev.clone(), next_.clone(), prev, next_).item() == pytest.approx(1.0 - 0.25)


def test_identity_of_the_averaged_output_holds_numerically():
    rng = np.random.default_rng(0)
    a, b, s = (torch.from_numpy(rng.normal(size=(3, 1, 16, 16))) for _ in range(3))
    mean_error = ((a + b) / 2 - s).square().mean()
    assert consensus_loss(a, b, s, s).item() == pytest.approx(mean_error.item(), rel=1e-12)


def test_noisy_targets_give_the_clean_gradient_in_expectation():
    """With zero-mean target noise independent of the outputs, the gradient matches the clean target's."""
    generator = torch.Generator().manual_seed(1)
    clean = torch.randn(1, 1, 8, 8, generator=generator, dtype=torch.float64)
    f1 = torch.randn(1, 1, 8, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    f2 = torch.randn(1, 1, 8, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    consensus_loss(f1, f2, clean, clean).backward()
    clean_grad = f1.grad.clone()
    f1.grad = None
    draws = 4000
    noise = torch.randn(2, draws, 1, 8, 8, generator=generator, dtype=torch.float64)
    # MSE averages over the batch too, so one batch of draws is the mean loss over the draws.
    batch = (draws, 1, 8, 8)
    consensus_loss(f1.expand(batch), f2.expand(batch), clean + noise[0], clean + noise[1]).backward()
    # One draw's gradient per pixel has std 1/64; the mean of 4000 draws about 2.5e-4.
    assert clean_grad.abs().max() > 0.01
    assert torch.allclose(f1.grad, clean_grad, atol=1.5e-3)
