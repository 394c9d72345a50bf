"""Explicit symbol knowledge (ldrkit.denoisers.symbol_conditioned): priors over sequences and the symbol-conditioned denoiser."""
import numpy as np
import pytest
import torch

from ldrkit.denoisers.models import MLPDenoiser, UNetDenoiser
from ldrkit.denoisers.symbol_conditioned import (AutoregressivePrior, EmpiricalPrior, SymbolConditioned, bind, token_indices,
                            token_symbols)


def test_token_indices_round_trip_and_refuse_unknown_symbols():
    seqs = np.array([[1, -1, 1], [-1, -1, 1]])
    idx = token_indices(seqs, (1, -1))
    assert idx.tolist() == [[0, 1, 0], [1, 1, 0]]
    assert (token_symbols(idx, (1, -1)) == seqs).all()
    with pytest.raises(ValueError, match="alphabet"):
        token_indices(np.array([[0, 1, 1]]), (1, -1))


def test_empirical_prior_draws_only_training_rows():
    tokens = torch.tensor([[0, 1, 2], [2, 2, 0]])
    prior = EmpiricalPrior(3, 3, capacity=2)
    prior.fit(tokens)
    drawn = prior.sample(200, torch.Generator().manual_seed(0))
    assert {tuple(r) for r in drawn.tolist()} == {(0, 1, 2), (2, 2, 0)}


def test_autoregressive_prior_learns_a_copy_rule():
    # s2 = s1 over 5 symbols: an independent sampler obeys it with probability 1/5.
    gen = torch.Generator().manual_seed(0)
    first = torch.randint(0, 5, (400,), generator=gen)
    tokens = torch.stack([first, first], 1)
    prior = AutoregressivePrior(2, 5, hidden=32, depth=2)
    prior.fit(tokens, steps=600, seed=0)
    drawn = prior.sample(500, torch.Generator().manual_seed(1))
    assert (drawn[:, 0] == drawn[:, 1]).float().mean() > 0.9
    assert not any(p.requires_grad for p in prior.parameters())  # frozen again after the fit


def test_conditioning_maps_paint_each_symbol_on_its_region():
    masks = torch.zeros(2, 1, 4, 8, dtype=torch.bool)
    masks[0, :, :, :4] = True
    masks[1, :, :, 4:] = True
    model = SymbolConditioned(UNetDenoiser((1, 4, 8), channels=(8, 8), norm_num_groups=4, cond_channels=3),
                              masks, 3, EmpiricalPrior(2, 3, 1))
    maps = model.condition(torch.tensor([[2, 0]]))
    assert maps.shape == (1, 3, 4, 8)
    assert (maps[0, 2, :, :4] == 1).all() and (maps[0, 0, :, 4:] == 1).all()
    assert maps.sum(1).eq(1).all()  # one symbol per pixel


def test_bound_model_is_a_plain_denoiser_and_checks_its_tokens():
    masks = torch.eye(3, dtype=torch.bool)  # vectors: one coordinate per symbol
    model = SymbolConditioned(MLPDenoiser(3, hidden=16, depth=2, cond_channels=6), masks, 2, EmpiricalPrior(3, 2, 1))
    x, t = torch.randn(5, 3), torch.full((5,), 10)
    one = torch.tensor([[0, 1, 1]])
    assert torch.allclose(bind(model, one)(x, t), model(x, t, one.expand(5, 3)))
    assert not torch.allclose(bind(model, one)(x, t), bind(model, torch.tensor([[1, 1, 1]]))(x, t))
    with pytest.raises(ValueError, match="tokens must have shape"):
        bind(model, torch.zeros(2, 3, dtype=torch.long))(x, t)
    with pytest.raises(ValueError, match="no conditioning"):
        MLPDenoiser(3, hidden=16)(x, t, torch.zeros(5, 6))


def test_symbol_experiments_are_their_base_plus_symbols_and_the_ema_pair_differs_only_by_averaging():
    from ldrkit.spec.registry import get_experiment
    for profile in ("smoke", "cpu", "paper"):
        base = get_experiment("quarter-digits-unet").config(profile, 1)
        ema = get_experiment("quarter-digits-unet-ema").config(profile, 1)
        assert ema["train"].pop("ema_decay") == 0.995 and ema == base
        conditioned = get_experiment("quarter-digits-unet-ema-symbols").config(profile, 1)
        assert conditioned.pop("symbols")["prior"] == "autoregressive"
        assert conditioned["eval"].pop("oracle_distance") is False
        assert conditioned["train"].pop("ema_decay") == 0.995
        base["eval"].pop("oracle_distance")
        assert conditioned == base
