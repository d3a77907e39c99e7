"""Text branch: tokenizer, embeddings, vocab, BiLSTM encoder; plus a behaviour test."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from model.embeddings import fasttext_buckets, train_embeddings
from model.text import (
    PAD,
    UNK,
    SubwordEmbedding,
    TextEncoder,
    Vocab,
    embedding_matrix,
    encode_batch,
)
from model.tokenize import Tokenizer


# --- tokenizer ---------------------------------------------------------------------------
def test_tokenizer_korean_morphemes():
    tokens = Tokenizer().tokenize("냉동된 소고기를 포함한 조제식료품")
    assert "냉동" in tokens and "소고기" in tokens
    assert "를" not in tokens  # particles carry no class signal


def test_tokenizer_english_and_punctuation():
    tokens = Tokenizer().tokenize("Meat of bovine animals; FROZEN, Boneless")
    assert tokens == ["meat", "of", "bovine", "animals", "frozen", "boneless"]


def test_tokenizer_model_numbers_share_shape_tokens():
    tok = Tokenizer()
    a, b = tok.tokenize("SM-G991N 스마트폰"), tok.tokenize("SM-G998B 스마트폰")
    assert "sm-g991n" in a and "sm-g998b" in b  # literal kept
    shared = set(a) & set(b)
    assert "sm" in shared and "스마트폰" in shared
    assert tok.tokenize("UCW455H") == ["ucw455h", "ucw0h", "ucw"]


def test_tokenizer_quantities_and_numbers():
    tokens = Tokenizer().tokenize("baby pillow 27x21cm 235mm 50g 12345")
    assert "mm" in tokens and "g" in tokens
    assert "235mm" not in tokens and "12345" not in tokens


def test_tokenizer_modes_and_config_round_trip():
    for mode in ("word", "morph", "morph+subword"):
        tok = Tokenizer(mode=mode)
        clone = Tokenizer.from_config(tok.to_config())
        again = pickle.loads(pickle.dumps(tok))
        text = "프로젝터(Boxlight UCW455H)"
        assert clone.tokenize(text) == tok.tokenize(text) == again.tokenize(text)
    assert Tokenizer("word").tokenize("투밴드 블랙 235mm") == ["투밴드", "블랙", "235mm"]
    with pytest.raises(ValueError, match="unknown tokenizer mode"):
        Tokenizer(mode="bpe")


def test_tokenize_many_matches_tokenize_and_handles_empty():
    tok = Tokenizer()
    texts = ["Beef frozen", "", "소고기 냉동", None, "SM-G991N"]
    many = tok.tokenize_many(texts)
    assert len(many) == len(texts)
    assert many[1] == [] and many[3] == []
    assert many[0] == tok.tokenize("Beef frozen") and many[2] == tok.tokenize("소고기 냉동")


# --- embeddings --------------------------------------------------------------------------
CORPUS = [
    ["frozen", "beef", "boneless"],
    ["chilled", "beef", "steak"],
    ["frozen", "pork", "belly"],
    ["plastic", "storage", "box"],
    ["plastic", "bag", "polyethylene"],
    ["steel", "bolt", "m8"],
] * 10


def test_fasttext_gives_nonzero_oov_vectors():
    kv = train_embeddings(CORPUS, kind="fasttext", dim=16, epochs=2, workers=1)
    assert "beefsteak" not in kv.key_to_index
    assert np.linalg.norm(kv.get_vector("beefsteak")) > 0
    assert kv.vector_size == 16
    assert kv.bucket == fasttext_buckets(sum(map(len, CORPUS))) == 20_000


def test_word2vec_and_bad_input():
    kv = train_embeddings(CORPUS, kind="word2vec", dim=8, epochs=2, workers=1)
    assert "beef" in kv.key_to_index and kv.vector_size == 8
    with pytest.raises(ValueError, match="unknown embedding kind"):
        train_embeddings(CORPUS, kind="glove")
    with pytest.raises(ValueError, match="tokenized to nothing"):
        train_embeddings([[], []])


def test_subword_embedding_is_fasttext_composition_and_embeds_unseen_words():
    kv = train_embeddings(CORPUS, kind="fasttext", dim=16, epochs=2, workers=1)
    vocab = Vocab.build(CORPUS)
    emb = SubwordEmbedding.from_keyed_vectors(vocab, kv)
    with torch.no_grad():
        known = emb(torch.tensor([[vocab.stoi["beef"], PAD]]))[0]
    # a training word: gensim's own vector (word + n-grams, averaged)
    np.testing.assert_allclose(known[0].numpy(), kv.get_vector("beef"), atol=1e-5)
    assert torch.all(known[1] == 0)  # padding
    # a misspelt word gets an id past the vocabulary and a vector from its n-grams; a literal
    # model number (digits) stays <unk>
    ids = emb.encode([["beeef", "bolt", "x-4411"]], vocab.stoi)[0]
    assert ids[0] >= len(vocab) and ids[1] == vocab.stoi["bolt"] and ids[2] == UNK
    assert emb.encode([["beeef"]], vocab.stoi)[0][0] == ids[0]  # stable within the table
    with torch.no_grad():
        vecs = emb(torch.tensor([ids]))[0]
    assert vecs[0].norm() > 0 and torch.all(vecs[2] == 0)
    rows = emb._rows_of("beeef")
    expected = emb.ngrams.weight[rows].mean(0)
    torch.testing.assert_close(vecs[0], expected.detach(), atol=1e-5, rtol=1e-5)
    # gradients reach the word and the n-gram tables (fine-tuned end to end)
    emb(torch.tensor([[vocab.stoi["beef"], ids[0]]])).sum().backward()
    assert emb.word.weight.grad.abs().sum() > 0 and emb.ngrams.weight.grad.abs().sum() > 0
    # a module shaped from a saved state dict reproduces it
    state = {f"e.{k}": v for k, v in emb.state_dict().items()}
    clone = SubwordEmbedding(**SubwordEmbedding.shapes_from_state(state, "e."))
    clone.load_state_dict(emb.state_dict())
    probe = torch.tensor([clone.encode([["frozen", "beeef", "plastik"]], vocab.stoi)[0]])
    torch.testing.assert_close(
        clone(probe),
        emb(torch.tensor([emb.encode([["frozen", "beeef", "plastik"]], vocab.stoi)[0]])),
    )
    kv_w2v = train_embeddings(CORPUS, kind="word2vec", dim=8, epochs=1, workers=1)
    with pytest.raises(ValueError, match="fastText"):
        SubwordEmbedding.from_keyed_vectors(vocab, kv_w2v)


# --- vocab / matrix / batching -------------------------------------------------------------
def test_vocab_round_trip_and_encode():
    vocab = Vocab.build(CORPUS, min_count=1)
    assert vocab.itos[:2] == ["<pad>", "<unk>"]
    assert vocab.itos[2] in ("beef", "frozen", "plastic")  # most frequent first
    restored = Vocab.from_dict(vocab.to_dict())
    assert restored.itos == vocab.itos
    ids = restored.encode(["beef", "nonexistent"])
    assert ids[0] == vocab.stoi["beef"] and ids[1] == UNK
    assert len(Vocab.build(CORPUS, max_size=5)) == 5
    assert "m8" not in Vocab.build(CORPUS, min_count=11)


def test_embedding_matrix_rows():
    vocab = Vocab.build(CORPUS + [["unseen_word"]])
    kv_w2v = train_embeddings(CORPUS, kind="word2vec", dim=8, epochs=1, workers=1)
    matrix = embedding_matrix(vocab, kv_w2v)
    assert matrix.shape == (len(vocab), 8) and matrix.dtype == np.float32
    assert np.all(matrix[PAD] == 0)
    np.testing.assert_allclose(matrix[vocab.stoi["beef"]], kv_w2v.get_vector("beef"))
    assert np.linalg.norm(matrix[vocab.stoi["unseen_word"]]) > 0
    kv_ft = train_embeddings(CORPUS, kind="fasttext", dim=8, epochs=1, workers=1)
    ft = embedding_matrix(vocab, kv_ft)
    np.testing.assert_allclose(ft[vocab.stoi["unseen_word"]], kv_ft.get_vector("unseen_word"))


def test_encode_batch_pads_truncates_and_keeps_empty():
    vocab = Vocab.build(CORPUS)
    ids, lengths = encode_batch(vocab, [["frozen", "beef", "boneless"], [], ["beef"]], max_len=2)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.shape == (3, 2)
    assert lengths.tolist() == [2, 1, 1]
    assert ids[1, 0].item() == UNK and ids[2, 1].item() == PAD


# --- encoder ------------------------------------------------------------------------------
def test_text_encoder_shape_and_gradients():
    torch.manual_seed(0)
    vocab = Vocab.build(CORPUS)
    matrix = np.random.default_rng(0).normal(size=(len(vocab), 16)).astype(np.float32)
    encoder = TextEncoder(matrix, hidden=32, layers=2, out_dim=512)
    assert encoder.out_dim == 512
    ids, lengths = encode_batch(vocab, CORPUS[:4] + [[]], max_len=8)
    features = encoder(ids, lengths)
    assert features.shape == (5, 512)
    assert torch.isfinite(features).all()
    features.pow(2).mean().backward()
    assert encoder.embedding.weight.grad is not None
    assert encoder.embedding.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.lstm.parameters())
    # padding must not change the feature of a sequence
    encoder.eval()
    short, short_len = encode_batch(vocab, [["frozen", "beef"]], max_len=8)
    padded = torch.cat([short, torch.zeros((1, 5), dtype=torch.long)], dim=1)
    torch.testing.assert_close(encoder(short, short_len), encoder(padded, short_len))


def test_text_encoder_frozen_embeddings():
    matrix = np.ones((6, 4), dtype=np.float32)
    encoder = TextEncoder(matrix, hidden=8, out_dim=32, freeze_embeddings=True)
    assert not encoder.embedding.weight.requires_grad
    out = encoder(torch.tensor([[2, 3, 0]]), torch.tensor([2]))
    assert out.shape == (1, 32)


# --- behaviour: a changed model number or brand does not change the class ----------------
PRODUCTS = {
    "8517": ["스마트폰", "smartphone", "mobile phone", "휴대전화"],
    "8528": ["프로젝터", "projector", "monitor", "모니터"],
    "8708": ["brake pad", "wiper motor", "clutch kit", "브레이크 패드"],
    "3926": ["plastic cover", "plastic clip", "플라스틱 커버", "plastic holder"],
}
BRANDS = ["samsung", "lg", "hyundai", "boxlight", "sony", "bosch", "삼성", "현대"]


def _model_number(rng: random.Random) -> str:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.randint(1, 3)))
    return f"{letters}-{rng.randint(100, 99999)}{rng.choice('ABCDN')}"


def _toy_cases(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        code = rng.choice(sorted(PRODUCTS))
        texts.append(f"{rng.choice(PRODUCTS[code])} {rng.choice(BRANDS)} {_model_number(rng)}")
        labels.append(code)
    return texts, labels


def _train_toy_bilstm(texts, labels, tokenizer):
    torch.manual_seed(0)
    tokens = tokenizer.tokenize_many(texts)
    kv = train_embeddings(tokens, kind="fasttext", dim=16, epochs=3, workers=1)
    vocab = Vocab.build(tokens)
    encoder = TextEncoder(embedding_matrix(vocab, kv), hidden=32, out_dim=64, dropout=0.1)
    classes = sorted(set(labels))
    head = torch.nn.Linear(encoder.out_dim, len(classes))
    model = torch.nn.Sequential()  # container only, for parameters()
    model.add_module("encoder", encoder)
    model.add_module("head", head)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    y = torch.tensor([classes.index(c) for c in labels])
    ids, lengths = encode_batch(vocab, tokens, max_len=16)
    for _ in range(40):
        for batch in torch.randperm(len(y)).split(64):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                head(encoder(ids[batch], lengths[batch])), y[batch]
            )
            loss.backward()
            optimiser.step()
    model.eval()

    def predict(new_texts: list[str]) -> list[str]:
        with torch.no_grad():
            b_ids, b_len = encode_batch(vocab, tokenizer.tokenize_many(new_texts), max_len=16)
            return [classes[i] for i in head(encoder(b_ids, b_len)).argmax(1).tolist()]

    return predict


def test_bilstm_invariant_to_model_number_and_brand():
    texts, labels = _toy_cases(240, seed=1)
    predict = _train_toy_bilstm(texts, labels, Tokenizer())
    rng = random.Random(7)
    base, variants, expected = [], [], []
    for code, names in sorted(PRODUCTS.items()):
        for name in names:
            base.append(f"{name} {rng.choice(BRANDS)} {_model_number(rng)}")
            # same product, another brand and another model number
            variants.append(f"{name} {rng.choice(BRANDS)} {_model_number(rng)}")
            expected.append(code)
    before, after = predict(base), predict(variants)
    assert sum(b == e for b, e in zip(before, expected)) >= len(expected) - 1  # it learned the task
    assert before == after


def test_char_ngrams_and_ngram_bag():
    from model.text import char_ngrams

    grams = char_ngrams("Beef  BEEF", 1, 3)
    assert grams == sorted(set(grams)) and " be" in grams and "ef " in grams
    assert "  " not in grams and " " not in grams  # whitespace-only grams dropped
    assert char_ngrams("", 1, 3) == [] and char_ngrams(None, 1, 3) == []
    assert "냉동" in char_ngrams("냉동 소고기", 2, 2)
    matrix = np.ones((6, 4), dtype=np.float32)
    encoder = TextEncoder(matrix, hidden=8, out_dim=16, ngram_vocab_size=10, ngram_dim=4)
    ids, lengths = torch.tensor([[2, 3], [4, 0]]), torch.tensor([2, 1])
    out = encoder(ids, lengths, torch.tensor([2, 3, 5, 1]), torch.tensor([0, 3]))
    assert out.shape == (2, 16)
    with pytest.raises(ValueError, match="n-gram bag"):
        encoder(ids, lengths)
