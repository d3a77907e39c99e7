"""Partial labels: a case whose decided code today's tariff split trains on its set."""

from __future__ import annotations

import numpy as np
import torch

from model.config import ModelConfig
from model.fit import fit
from model.hsmodel import HSModel
from model.losses import mixed_loss, set_nll
from model.records import Example
from model.synthetic import PRODUCTS, make_cases


def test_the_set_loss_sends_gradient_only_to_the_set() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0]], requires_grad=True)
    allowed = torch.tensor([[False, True, True, False]])
    loss = set_nll(logits, allowed).sum()
    loss.backward()
    grad = logits.grad[0]
    p = torch.softmax(logits.detach()[0], 0)
    # d/dz of logsumexp(z) - logsumexp(z_S): p outside the set, p - p_S-normalised inside
    assert torch.allclose(grad[[0, 3]], p[[0, 3]])
    inside = p[[1, 2]] - p[[1, 2]] / p[[1, 2]].sum()
    assert torch.allclose(grad[[1, 2]], inside)
    # the loss ignores how the set's mass is shared: moving it within the set changes nothing
    a = set_nll(torch.tensor([[2.0, 3.0, -9.0, 0.0]]), allowed)
    b = set_nll(torch.tensor([[2.0, -9.0, 3.0, 0.0]]), allowed)
    assert torch.allclose(a, b)
    # a set of one is cross-entropy; without partial rows the mixed loss is exactly it
    one = torch.tensor([[False, True, False, False]])
    ce = torch.nn.functional.cross_entropy(logits.detach(), torch.tensor([1]))
    assert torch.allclose(set_nll(logits.detach(), one), ce)
    target = torch.tensor([1])
    assert torch.equal(mixed_loss(logits.detach(), target, None), ce)


def test_a_model_learns_from_partial_labels_and_is_judged_on_the_set(tmp_path) -> None:
    cases = make_cases(200, 41, with_images=0)
    phones = "8517130000"
    # every phone case was decided under an old code that is now split into two current ones
    split = ("8517130010", "8517130090")
    train = [
        Example(e.key, e.title, e.description, None, "8517120000", split)
        if e.label == phones
        else e
        for e in cases
    ]
    cfg = ModelConfig.from_flat(
        inputs="title",
        embed_dim=16,
        embed_epochs=2,
        hidden=16,
        feature_dim=32,
        epochs=3,
        batch_size=32,
        num_threads=1,
    )
    val = [e for e in make_cases(60, 42, with_images=0) if e.label != phones]
    model = fit(train, val, cfg)
    assert set(split) <= set(model.labels) and "8517120000" not in model.labels
    assert phones not in model.labels
    test = make_cases(60, 43, with_images=0)
    as_partial = [
        Example(e.key, e.title, label="8517120000", candidates=split) if e.label == phones else e
        for e in test
    ]
    metrics = model.evaluate(as_partial)
    n_phones = sum(e.label == phones for e in test)
    assert metrics["partial_n"] == n_phones > 0
    assert metrics["partial_top1"] >= 0.9  # the top code is one of the two, either counts
    assert metrics["top1"] >= 0.9
    # the members share the set's mass between its codes: the two together carry it
    probs = model.predict_proba([e for e in test if e.label == phones])
    cols = [model.labels.index(c) for c in split]
    assert np.all(probs[:, cols].sum(axis=1) > 0.5)
    assert len(PRODUCTS) + 1 == len(model.labels)
    # the k-NN vote keeps its per-row weights (a partial case's copies share one vote)
    knn = model.member("knn")
    if knn is not None:
        assert knn.knn.weights is not None and knn.knn.weights.min() == 0.5
    loaded = HSModel.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict_proba(test), model.predict_proba(test))


def test_the_served_refit_keeps_partial_labels() -> None:
    from model.refit import refit

    cases = make_cases(160, 44, with_images=0)
    split = ("8517130010", "8517130090")
    train = [
        Example(e.key, e.title, None, None, "8517120000", split) if e.label == "8517130000" else e
        for e in cases
    ]
    cfg = ModelConfig.from_flat(
        inputs="title", embed_dim=16, embed_epochs=2, hidden=16, feature_dim=32, epochs=2,
        batch_size=32, num_threads=1, sentence_encoder="none", companion="none",
    )  # fmt: skip
    val = [e for e in make_cases(50, 45, with_images=0) if e.label != "8517130000"]
    evaluated = fit(train, val, cfg)
    served = refit(evaluated, [*train, *val])
    assert served.labels == evaluated.labels and set(split) <= set(served.labels)
    phones = [e for e in make_cases(30, 46, with_images=0) if e.label == "8517130000"]
    top = [served.labels[i] for i in served.predict_proba(phones).argmax(axis=1)]
    assert sum(code in split for code in top) >= len(phones) - 1
