"""Sentence embeddings of the fixtures' checkpoints, for TestEmbeddingsMatchReference.

For each fixture directory given, the last hidden states of the inputs in its
expected.json, from this directory's plain-PyTorch forwards (reference.py for BERT,
DistilBERT, RoBERTa, ALBERT and ELECTRA; make_modernbert.py, whose encoder ends with
the final norm; make_debertav2.py; make_mpnet.py; make_nomic_bert.py), pooled as sentence-transformers' Pooling module
pools them (sentence_transformers/models/Pooling.py):
  cls:  the first token's state;
  mean: sum(h * mask) / clamp(sum(mask), min=1e-9) over the sequence;
  max:  the maximum over the sequence after setting the padding's states to -1e9.
Writes DIR/embeddings.json: {"cls", "mean", "max"}, each a flat [B, H] list. The
task head in the checkpoint is not read: an embedding model is its base model alone.

Usage: /usr/bin/python3 make_embeddings.py DIR...  (Debian's torch 1.13 made the
committed files.)
"""
import json
import os
import sys

import torch

sys.dont_write_bytecode = True
from fixturelib import load_safetensors, read_json  # noqa: E402
import make_debertav2  # noqa: E402
import make_modernbert  # noqa: E402
import make_mpnet  # noqa: E402
import make_nomic_bert  # noqa: E402
import reference  # noqa: E402


def hidden(d, exp):
    cfg = read_json(os.path.join(d, "config.json"))
    ids = torch.tensor(exp["input_ids"])
    mask = torch.tensor(exp["attention_mask"])
    types = torch.tensor(exp["token_type_ids"])
    path = os.path.join(d, "model.safetensors")
    mt = cfg["model_type"]
    if mt == "modernbert":
        return make_modernbert.encoder(make_modernbert.Cfg(cfg), load_safetensors(path), ids, mask)
    if mt == "deberta-v2":
        return make_debertav2.encoder(make_debertav2.Cfg(cfg), load_safetensors(path), ids, types, mask)
    if mt == "mpnet":
        return make_mpnet.encoder(make_mpnet.Cfg(cfg), load_safetensors(path), ids, mask)
    if mt == "nomic_bert":
        return make_nomic_bert.encoder(make_nomic_bert.Cfg(cfg), load_safetensors(path), ids, mask, types)
    ref = reference.Ref(load_safetensors(path, dtypes=("F32",)), cfg)
    return reference.encode(ref, cfg, ids, mask, types)


def pooled(h, mask):
    m = mask.unsqueeze(-1).to(h.dtype)
    return {
        "cls": h[:, 0],
        "mean": (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9),
        "max": h.masked_fill(m == 0, -1e9).max(dim=1).values,
    }


def main(dirs):
    torch.set_grad_enabled(False)
    for d in dirs:
        exp = read_json(os.path.join(d, "expected.json"))
        out = pooled(hidden(d, exp), torch.tensor(exp["attention_mask"]))
        with open(os.path.join(d, "embeddings.json"), "w") as f:
            json.dump({k: v.reshape(-1).tolist() for k, v in out.items()}, f)
        print(d, {k: list(v.shape) for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv[1:])
