"""A plain-torch forward of each BERT-family encoder and task head, written from
transformers' modeling code (modeling_bert, _distilbert, _roberta, _albert, _electra;
MPNet's is make_mpnet.py's, NomicBERT's make_nomic_bert.py's and DeBERTa-v2's
make_debertav2.py's, which this file runs for model_type mpnet, nomic_bert and deberta-v2),
to check bertnode's forward against without transformers itself (a weaker oracle: this
file is a second reading of transformers, not transformers; make_fixtures.py is the
stronger check where transformers is installed).

Usage: reference.py DIR...  Each DIR holds config.json, model.safetensors and
inputs.json ({"task", "input_ids", "attention_mask", "token_type_ids"}, [B][L] lists);
the logits are written to DIR/reference.json as a flat list in [B, N], [B, L, N] or
[B, L, 2] row-major order. model.safetensors is read with fixturelib.py's reader (F32
only), beside this file.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # importing fixturelib would leave a __pycache__ in the repository
# fixturelib.py, beside this file: the safetensors reader and activations the fixture
# scripts share.
from fixturelib import ACTIVATIONS, load_safetensors  # noqa: E402
import make_debertav2  # noqa: E402
import make_mpnet  # noqa: E402
import make_nomic_bert  # noqa: E402

ACT = {name: ACTIVATIONS[name] for name in ("gelu", "gelu_new", "relu", "tanh")}


class Ref:
    def __init__(self, weights, cfg):
        self.w, self.cfg = weights, cfg

    def lin(self, name, x):
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def ln(self, name, x, eps):
        return F.layer_norm(x, x.shape[-1:], self.w[name + ".weight"], self.w[name + ".bias"], eps)

    def attend(self, p, names, x, mask, heads):
        """Eager attention: softmax(q k^T / sqrt(d) + (1 - mask) * min) v."""
        B, L, H = x.shape
        d = H // heads
        split = lambda t: t.view(B, L, heads, d).transpose(1, 2)
        q, k, v = (split(self.lin(p + n, x)) for n in names)
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + ext, dim=-1)
        return (probs @ v).transpose(1, 2).reshape(B, L, H)

    def bert_layer(self, p, x, mask):
        c = self.cfg
        eps, act = c["layer_norm_eps"], ACT[c["hidden_act"]]
        ctx = self.attend(p, ["attention.self.query", "attention.self.key", "attention.self.value"], x, mask, c["num_attention_heads"])
        a = self.ln(p + "attention.output.LayerNorm", self.lin(p + "attention.output.dense", ctx) + x, eps)
        i = act(self.lin(p + "intermediate.dense", a))
        return self.ln(p + "output.LayerNorm", self.lin(p + "output.dense", i) + a, eps)

    def bert_embeddings(self, p, ids, types, positions):
        w = self.w
        x = w[p + "word_embeddings.weight"][ids] + w[p + "token_type_embeddings.weight"][types]
        x = x + w[p + "position_embeddings.weight"][positions]
        return self.ln(p + "LayerNorm", x, self.cfg["layer_norm_eps"])


def encode(ref, cfg, ids, mask, types):
    """The last hidden states [B, L, H] and the pooled first token (or None)."""
    mt = cfg["model_type"]
    B, L = ids.shape
    arange = torch.arange(L)[None, :].expand(B, L)
    if mt == "distilbert":
        w = ref.w
        act = ACT[cfg["activation"]]
        x = w["distilbert.embeddings.word_embeddings.weight"][ids] + w["distilbert.embeddings.position_embeddings.weight"][arange]
        x = ref.ln("distilbert.embeddings.LayerNorm", x, 1e-12)
        for i in range(cfg["n_layers"]):
            p = f"distilbert.transformer.layer.{i}."
            ctx = ref.attend(p, ["attention.q_lin", "attention.k_lin", "attention.v_lin"], x, mask, cfg["n_heads"])
            sa = ref.ln(p + "sa_layer_norm", ref.lin(p + "attention.out_lin", ctx) + x, 1e-12)
            ffn = ref.lin(p + "ffn.lin2", act(ref.lin(p + "ffn.lin1", sa)))
            x = ref.ln(p + "output_layer_norm", ffn + sa, 1e-12)
        return x
    if mt == "roberta":
        pad = cfg["pad_token_id"]
        m = ids.ne(pad).int()
        positions = (torch.cumsum(m, dim=1).type_as(m) * m).long() + pad
        x = ref.bert_embeddings("roberta.embeddings.", ids, torch.zeros_like(ids), positions)
        for i in range(cfg["num_hidden_layers"]):
            x = ref.bert_layer(f"roberta.encoder.layer.{i}.", x, mask)
        return x
    if mt in ("bert", "electra"):
        x = ref.bert_embeddings(mt + ".embeddings.", ids, types, arange)
        if mt == "electra" and "electra.embeddings_project.weight" in ref.w:
            x = ref.lin("electra.embeddings_project", x)
        for i in range(cfg["num_hidden_layers"]):
            x = ref.bert_layer(f"{mt}.encoder.layer.{i}.", x, mask)
        return x
    if mt == "albert":
        x = ref.bert_embeddings("albert.embeddings.", ids, types, arange)
        x = ref.lin("albert.encoder.embedding_hidden_mapping_in", x)
        n, groups = cfg["num_hidden_layers"], cfg["num_hidden_groups"]
        eps, act = cfg["layer_norm_eps"], ACT[cfg["hidden_act"]]
        for i in range(n):
            g = int(i / (n / groups))
            for j in range(cfg["inner_group_num"]):
                p = f"albert.encoder.albert_layer_groups.{g}.albert_layers.{j}."
                ctx = ref.attend(p, ["attention.query", "attention.key", "attention.value"], x, mask, cfg["num_attention_heads"])
                a = ref.ln(p + "attention.LayerNorm", x + ref.lin(p + "attention.dense", ctx), eps)
                f = ref.lin(p + "ffn_output", act(ref.lin(p + "ffn", a)))
                x = ref.ln(p + "full_layer_layer_norm", f + a, eps)
        return x
    raise ValueError(f"model_type {mt}")


def mlm_head(ref, cfg, h):
    """XForMaskedLM's head: BertLMPredictionHead (transform.dense, hidden_act, LayerNorm),
    RobertaLMHead (dense, gelu, layer_norm), DistilBertForMaskedLM's vocab_transform,
    activation, vocab_layer_norm (eps 1e-12), AlbertMLMHead (dense to embedding_size,
    hidden_act, LayerNorm), ElectraForMaskedLM's generator_predictions (dense to
    embedding_size, gelu whatever hidden_act says, LayerNorm) and generator_lm_head; then
    the decoder, whose weight is tied to the word embeddings."""
    mt = cfg["model_type"]
    eps = cfg.get("layer_norm_eps")
    if mt == "bert":
        dense, norm, bias, act = "cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias", ACT[cfg["hidden_act"]]
    elif mt == "roberta":
        dense, norm, bias, act = "lm_head.dense", "lm_head.layer_norm", "lm_head.bias", F.gelu
    elif mt == "distilbert":
        dense, norm, bias, act, eps = "vocab_transform", "vocab_layer_norm", "vocab_projector.bias", ACT[cfg["activation"]], 1e-12
    elif mt == "albert":
        dense, norm, bias, act = "predictions.dense", "predictions.LayerNorm", "predictions.bias", ACT[cfg["hidden_act"]]
    elif mt == "electra":
        dense, norm, bias, act = "generator_predictions.dense", "generator_predictions.LayerNorm", "generator_lm_head.bias", F.gelu
    else:
        raise ValueError(f"model_type {mt} has no masked-LM head here")
    x = ref.ln(norm, act(ref.lin(dense, h)), eps)
    return F.linear(x, ref.w[f"{mt}.embeddings.word_embeddings.weight"], ref.w[bias])


def head(ref, cfg, task, h):
    """The task head in evaluation mode (dropout is the identity). Multiple choice
    ("choice") has the sequence head with one output, but for RoBERTa and ELECTRA."""
    mt = cfg["model_type"]
    if task == "mlm":
        return mlm_head(ref, cfg, h)
    if task == "qa":
        return ref.lin("qa_outputs", h)
    if task == "ner":
        return ref.lin("classifier", h)
    first = h[:, 0]
    if task == "choice" and mt == "roberta":  # RobertaForMultipleChoice: pooler, classifier
        return ref.lin("classifier", torch.tanh(ref.lin("roberta.pooler.dense", first)))
    if task == "choice" and mt == "electra":  # ElectraForMultipleChoice: SequenceSummary (gelu)
        return ref.lin("classifier", F.gelu(ref.lin("sequence_summary.summary", first)))
    if mt == "bert":
        return ref.lin("classifier", torch.tanh(ref.lin("bert.pooler.dense", first)))
    if mt == "albert":
        return ref.lin("classifier", torch.tanh(ref.lin("albert.pooler", first)))
    if mt == "distilbert":
        return ref.lin("classifier", F.relu(ref.lin("pre_classifier", first)))
    act = torch.tanh if mt == "roberta" else F.gelu  # ElectraClassificationHead: gelu
    return ref.lin("classifier.out_proj", act(ref.lin("classifier.dense", first)))


def main(dirs):
    torch.set_grad_enabled(False)
    for d in dirs:
        with open(f"{d}/config.json") as f:
            cfg = json.load(f)
        with open(f"{d}/inputs.json") as f:
            inp = json.load(f)
        w = load_safetensors(f"{d}/model.safetensors", dtypes=("F32",))
        ids = torch.tensor(inp["input_ids"])
        mask = torch.tensor(inp["attention_mask"])
        types = torch.tensor(inp["token_type_ids"])
        if cfg["model_type"] == "mpnet":
            logits = make_mpnet.logits_of(make_mpnet.Cfg(cfg), w, inp["task"], ids, mask)
        elif cfg["model_type"] == "deberta-v2":
            logits = make_debertav2.logits_of(make_debertav2.Cfg(cfg), w, inp["task"], ids, mask, types)
        elif cfg["model_type"] == "nomic_bert":
            logits = make_nomic_bert.logits_of(make_nomic_bert.Cfg(cfg), w, inp["task"], ids, mask, types)
        else:
            ref = Ref(w, cfg)
            logits = head(ref, cfg, inp["task"], encode(ref, cfg, ids, mask, types))
        with open(f"{d}/reference.json", "w") as f:
            json.dump(logits.reshape(-1).tolist(), f)


if __name__ == "__main__":
    main(sys.argv[1:])
