"""ELECTRA's masked-LM fixture for TestFamiliesMatchTransformersFixtures, made without
transformers: model/testdata/families/fixtures/electra-mlm/, an ElectraForMaskedLM
checkpoint (the class of the generator checkpoints, google/electra-small-generator and
the like) in the layout make_fixtures.py gives the other ELECTRA fixtures.

What ElectraForMaskedLM computes, as transformers' modeling_electra.py has it: ElectraModel
(BERT's embeddings at embedding_size, electra.embeddings_project to hidden_size when the
two differ, BERT's layers); generator_predictions: dense (hidden_size -> embedding_size),
get_activation("gelu") whatever hidden_act says, LayerNorm (embedding_size,
layer_norm_eps); generator_lm_head, a Linear(embedding_size, vocab_size) whose weight is
tied to the word embeddings (_tied_weights_keys) and whose bias is its own; the loss
CrossEntropyLoss over the labels that are not -100. The forward is reference.py's (Ref,
encode and mlm_head), the plain-torch reading of transformers' BERT-family code that
TestFamiliesMatchTorchReference runs; --sanity checks it against a float64 forward
written out here, token by token.

The fixture: electra-classify's sizes (hidden 16, 4 heads, 2 layers, embedding_size 8,
so embeddings_project and the head's dense both map between widths) with hidden_act relu,
so that a head taking hidden_act instead of GELU shows; random weights (fixturelib.py's
random_weights: seed 0, normal std 0.2 in ElectraForMaskedLM's registration order,
LayerNorm weights 1 + that), the head's bias included. Its model.safetensors also holds
generator_lm_head.weight, the word embeddings' tied copy that the hub's pytorch_model.bin
keeps and a loader ignores. The tokenizer files are electra-classify's (make_fixtures.py
saved them with transformers' ElectraTokenizer: WordPiece, lower case); the texts are
fixturelib.py's masked_texts, encoded by tokenizers' npm binding with BertTokenizerFast's
pipeline over that vocab.txt (fixturelib.py's encode_masked). expected.json keeps the
logits at each [MASK] and the texts' ends, labels and their loss, as the other masked-LM
fixtures.

Rerun from the repository root with Debian's torch 1.13 (/usr/bin/python3), which made
the committed fixture:

    mkdir -p /tmp/nodetok && (cd /tmp/nodetok && npm install tokenizers@0.23.2)
    make_electra.py --make /tmp/nodetok/node_modules
                                  rewrites fixtures/electra-mlm
    make_electra.py --sanity      the sanity checks, on the committed fixture
    make_electra.py --check DIR...
                                  checkpoint directories (bertnode's, kept with
                                  BERTNODE_KEEP_OURS) computed here against their
                                  expected.json, exiting non-zero above 1e-4
"""
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # importing fixturelib would leave a __pycache__ in the repository
from fixturelib import (  # noqa: E402
    Float64, Sanity, check_reference, encode_masked, expected_of, fresh_dir, load_dir, main, masked_texts, mlm_loss,
    mlm_targets, random_weights, read_json, stored, write_checkpoint)
import fixturelib  # noqa: E402
import reference  # noqa: E402

NAME = "electra-mlm"
REFERENCE = "reference.py's ElectraForMaskedLM, a reading of transformers' modeling_electra.py (make_electra.py)"
TOKENIZER = "tokenizers@0.23.2 (npm): BertTokenizerFast's pipeline over electra-classify's vocab.txt"
SOURCE = os.path.join(fixturelib.OUT, "electra-classify")
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
TIED = "generator_lm_head.weight"


def config_dict():
    """electra-classify's config.json (ElectraConfig's keys) as ElectraForMaskedLM's: no
    labels, hidden_act relu."""
    d = read_json(os.path.join(SOURCE, "config.json"))
    for k in ("id2label", "label2id"):
        del d[k]
    return dict(sorted(dict(d, architectures=["ElectraForMaskedLM"], hidden_act="relu").items()))


def param_shapes(cfg, task="mlm"):
    """(name, shape) in the order ElectraForMaskedLM registers its parameters (the tied
    generator_lm_head.weight once, as the word embeddings)."""
    assert task == "mlm", task
    H, E, I, V = cfg["hidden_size"], cfg["embedding_size"], cfg["intermediate_size"], cfg["vocab_size"]
    out = []

    def lin(prefix, n_out, n_in):
        out.extend([(prefix + ".weight", (n_out, n_in)), (prefix + ".bias", (n_out,))])

    def norm(prefix, n):
        out.extend([(prefix + ".weight", (n,)), (prefix + ".bias", (n,))])

    p = "electra.embeddings."
    out.extend([(p + "word_embeddings.weight", (V, E)), (p + "position_embeddings.weight", (cfg["max_position_embeddings"], E)),
                (p + "token_type_embeddings.weight", (cfg["type_vocab_size"], E))])
    norm(p + "LayerNorm", E)
    if E != H:
        lin("electra.embeddings_project", H, E)
    for i in range(cfg["num_hidden_layers"]):
        p = f"electra.encoder.layer.{i}."
        for n in ("query", "key", "value"):
            lin(p + "attention.self." + n, H, H)
        lin(p + "attention.output.dense", H, H)
        norm(p + "attention.output.LayerNorm", H)
        lin(p + "intermediate.dense", I, H)
        lin(p + "output.dense", H, I)
        norm(p + "output.LayerNorm", H)
    norm("generator_predictions.LayerNorm", E)  # ElectraGeneratorPredictions makes it before dense
    lin("generator_predictions.dense", E, H)
    out.append(("generator_lm_head.bias", (V,)))
    return out


def logits_of(cfg, w, ids, mask, types):
    """reference.py's ElectraForMaskedLM logits [B, L, V], float32."""
    with torch.no_grad():
        ref = reference.Ref(w, cfg)
        return reference.head(ref, cfg, "mlm", reference.encode(ref, cfg, ids, mask, types))


def naive_logits(cfg, w, ids, types, head_act=None):
    """One unpadded sequence's logits [n, V] in float64, each attention score and mix a
    Python sum; head_act replaces the head's GELU."""
    f64 = Float64(w, cfg["layer_norm_eps"])
    w, ln, lin = f64.w, f64.ln, f64.lin
    act = {"relu": torch.relu, "gelu": f64.gelu}[cfg["hidden_act"]]
    L, H, nh = len(ids), cfg["hidden_size"], cfg["num_attention_heads"]
    D = H // nh
    p = "electra.embeddings."
    h = w[p + "word_embeddings.weight"][ids] + w[p + "position_embeddings.weight"][:L] + w[p + "token_type_embeddings.weight"][types]
    h = ln(p + "LayerNorm", h)
    if "electra.embeddings_project.weight" in w:
        h = lin("electra.embeddings_project", h)
    for i in range(cfg["num_hidden_layers"]):
        p = f"electra.encoder.layer.{i}."
        q, k, v = (lin(p + "attention.self." + n, h) for n in ("query", "key", "value"))
        ctx = torch.zeros(L, H, dtype=torch.float64)
        for hd in range(nh):
            s = slice(hd * D, (hd + 1) * D)
            for a in range(L):
                pr = torch.softmax(torch.tensor([float(q[a, s] @ k[b, s]) / math.sqrt(D) for b in range(L)], dtype=torch.float64), 0)
                ctx[a, s] = sum(pr[b] * v[b, s] for b in range(L))
        a = ln(p + "attention.output.LayerNorm", lin(p + "attention.output.dense", ctx) + h)
        h = ln(p + "output.LayerNorm", lin(p + "output.dense", act(lin(p + "intermediate.dense", a))) + a)
    t = ln("generator_predictions.LayerNorm", (head_act or f64.gelu)(lin("generator_predictions.dense", h)))
    return t @ w["electra.embeddings.word_embeddings.weight"].T + w["generator_lm_head.bias"]


def batch_of(exp):
    return torch.tensor(exp["input_ids"]), torch.tensor(exp["attention_mask"]), torch.tensor(exp["token_type_ids"])


def make(npm):
    d = fresh_dir(NAME)
    for f in TOKENIZER_FILES:
        shutil.copy(os.path.join(SOURCE, f), d)
    cfg = config_dict()
    texts = masked_texts()
    enc = encode_masked(npm, os.path.join(SOURCE, "vocab.txt"), texts)
    ids, mask, types = batch_of(enc)
    w = random_weights(param_shapes(cfg), lambda name: "LayerNorm" in name)
    logits = logits_of(cfg, w, ids, mask, types)
    extra = mlm_targets(ids, mask, enc["mask_id"], cfg["vocab_size"])
    extra["loss"] = round(mlm_loss(logits, torch.tensor(extra["labels"])).item(), 7)
    exp = expected_of("mlm", REFERENCE, TOKENIZER, texts, ids, mask, types, stored("mlm", logits, extra))
    write_checkpoint(d, cfg, dict(w, **{TIED: w["electra.embeddings.word_embeddings.weight"]}), dict(exp, **extra))
    print(f"{NAME}: logits {list(logits.shape)}, |max| {logits.abs().max():.3f}, lengths {mask.sum(1).tolist()}")


def check(dirs):
    check_reference(dirs, lambda d: d, param_shapes,
                    lambda cfg, w, exp: stored("mlm", logits_of(cfg, w, *batch_of(exp)), exp), ignore=(TIED,))


def sanity():
    v = Sanity()
    claim, report = v.claim, v.report
    v.exact_gelu(F.gelu)
    cfg, w, exp = load_dir(os.path.join(fixturelib.OUT, NAME), lambda d: d)
    claim("the checkpoint's generator_lm_head.weight is the word embeddings",
          torch.equal(w.pop(TIED), w["electra.embeddings.word_embeddings.weight"]))
    claim("the tensors are ElectraForMaskedLM's", set(w) == {n for n, _ in param_shapes(cfg)})
    claim(f"embedding_size {cfg['embedding_size']} != hidden_size {cfg['hidden_size']}: embeddings_project and the head map widths",
          cfg["embedding_size"] != cfg["hidden_size"] and "electra.embeddings_project.weight" in w)
    ids, mask, types = batch_of(exp)
    claim(f"no text is longer than max_position_embeddings {cfg['max_position_embeddings']}", ids.shape[1] <= cfg["max_position_embeddings"])
    base = logits_of(cfg, w, ids, mask, types)
    report("mlm: this code vs expected.json", (stored("mlm", base, exp).reshape(-1) - torch.tensor(exp["logits"])).abs().max().item(), 2e-7)
    report("mlm: loss vs expected.json", abs(mlm_loss(base, torch.tensor(exp["labels"])).item() - exp["loss"]), 1e-6)
    v.per_sequence(
        "mlm", mask, base, lambda r, n: logits_of(cfg, w, ids[r:r + 1, :n], mask[r:r + 1, :n], types[r:r + 1, :n])[0],
        lambda r, n: naive_logits(cfg, w, ids[r, :n], types[r, :n]))
    n = int(mask[0].sum())
    delta = (naive_logits(cfg, w, ids[0, :n], types[0, :n], head_act=torch.relu) - base[0, :n].double()).abs().max().item()
    claim(f"the head with hidden_act's relu for GELU changes the logits by {delta:.3g}", delta > 1e-2)
    v.done()


if __name__ == "__main__":
    main(__doc__, check, sanity, make, "--make", 1)
