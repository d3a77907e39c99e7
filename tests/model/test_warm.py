"""model.warm: a network continues a trained one across new words and new codes."""

from __future__ import annotations

import pytest
import torch
from tiny_models import TINY_NETWORK

from model.config import ModelConfig
from model.fit import fit
from model.network import build_module
from model.refit import refit, retrains_network
from model.synthetic import make_cases
from model.text import Vocab
from model.warm import WarmSource, incompatibility, warm_config, warm_start

# enough epochs for a champion worth continuing (about 90% top-1 on these goods)
CONFIG = ModelConfig.from_flat(inputs="title", ensemble="none", **{**TINY_NETWORK, "epochs": 8})


@pytest.fixture(scope="module")
def champion():
    """A network trained on every code but the last one."""
    cases = make_cases(200, 41, with_images=0)
    last = max(e.label for e in cases)
    train = [e for e in cases if e.label != last]
    model = fit(train[:150], train[150:], CONFIG)
    return model, last


def _network_for(vocab_tokens: list[str], labels: list[str], config: ModelConfig = CONFIG):
    from model.network import Network
    from model.tokenize import Tokenizer

    vocab = Vocab(vocab_tokens)
    module = build_module(config, len(labels), vocab, None)
    return Network(config, module, vocab, Tokenizer(mode=config.network.tokenizer))


def test_shared_words_and_codes_keep_their_weights_new_ones_stay_fresh(champion) -> None:
    model, _ = champion
    old = model.network
    old_tokens = old.vocab.itos
    known, new_word = old_tokens[5], "zzz-brand-new-word"
    labels = [*model.labels[1:], "9999999999"]  # one code gone, one new, the rest shifted
    network = _network_for([*old_tokens[2:], new_word], labels)
    fresh_row = network.module.text_encoder.embedding.weight[-1].clone()
    info = warm_start(network, labels, WarmSource(old, tuple(model.labels)))

    emb, old_emb = network.module.text_encoder.embedding.weight, old.module.text_encoder.embedding
    row = network.vocab.stoi[known]
    assert torch.equal(emb[row], old_emb.weight[old.vocab.stoi[known]])
    assert torch.equal(emb[network.vocab.stoi[new_word]], fresh_row)
    head, old_head = network.module.head, old.module.head
    assert torch.equal(head.weight[0], old_head.weight[1])  # labels[0] was the old second code
    assert torch.equal(head.bias[-2], old_head.bias[-1])
    lstm = network.module.text_encoder.lstm.weight_hh_l0
    assert torch.equal(lstm, old.module.text_encoder.lstm.weight_hh_l0)
    assert info["new_codes"] == 1 and info["known_codes"] == len(labels) - 1
    assert info["new_words"] == 1 and info["fresh"] == []


def test_another_shape_cannot_be_continued(champion) -> None:
    model, _ = champion
    bigger = ModelConfig.from_flat(
        inputs="title", ensemble="none", **{**TINY_NETWORK, "hidden": 24}
    )
    assert incompatibility(model.network.config, bigger) == "hidden 16 -> 24"
    assert incompatibility(model.network.config, CONFIG) is None
    subword = CONFIG.with_flat(subword=True)
    assert incompatibility(subword, subword) == "subword embeddings are not continued"
    network = _network_for(model.network.vocab.itos, list(model.labels), bigger)
    with pytest.raises(ValueError, match="hidden 16 -> 24"):
        warm_start(network, list(model.labels), WarmSource(model.network, tuple(model.labels)))


def test_a_warm_fit_learns_a_new_code_in_few_epochs_and_beats_the_same_epochs_cold(
    champion,
) -> None:
    model, last = champion
    cases = make_cases(260, 42, with_images=0)  # the same goods, new cases, the new code too
    train, val, test = cases[:160], cases[160:210], cases[210:]
    assert last in {e.label for e in train}
    config = CONFIG.with_flat(warm_epochs=1)
    source = WarmSource(model.network, tuple(model.labels))
    warm = fit(train, val, config, warm_from=source)
    cold = fit(train, val, warm_config(config))  # from scratch, as few epochs
    history = warm.history
    assert history["warm_start"]["new_codes"] == 1
    assert len(history["epochs"]) == 1
    # measured: 0.82 against 0.22 (the cold network is still near the majority code)
    assert warm.evaluate(test)["top1"] > cold.evaluate(test)["top1"] + 0.3
    # a warm evaluated network refits warm: from the model it continued, not from scratch
    with pytest.raises(ValueError, match="warm_from"):
        refit(warm, cases)
    served = refit(warm, cases, warm_from=source)
    assert served.history["refit"]["network"] == "retrained, warm"
    assert "warm_start" in served.network.history


def test_the_refit_keeps_a_network_that_carries_no_weight_and_knows_every_code() -> None:
    # what the nightly training asks before reading the champion's network for a warm refit
    class Evaluated:
        def __init__(self, weights: dict[str, float]) -> None:
            self.labels = ["a", "b"]
            self._weights = weights

        def weights(self) -> dict[str, float]:
            return self._weights

    assert not retrains_network(Evaluated({"network": 0.0, "svm": 1.0}), ["a", "b"])
    assert retrains_network(Evaluated({"network": 0.1, "svm": 0.9}), ["a", "b"])
    assert retrains_network(Evaluated({"network": 0.0, "svm": 1.0}), ["a", "b", "c"])  # new code
    assert retrains_network(Evaluated({}), ["a", "b"])  # no mixture: the network is the model
