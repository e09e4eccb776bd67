"""NomicBERT fixtures for TestFamiliesMatchTransformersFixtures, made without transformers,
and NomicBERT's forward for make_embeddings.py.

What this is: an independent PyTorch transcription of the forward of NomicBERT (model_type
"nomic_bert"), the encoder of nomic-ai/nomic-embed-text-v1 and v1.5, as the hub code they
load with trust_remote_code computes it (nomic-ai/nomic-bert-2048's
modeling_hf_nomic_bert.py: NomicBertEmbeddings, NomicBertAttention with
NomicBertRotaryEmbedding and NomicBertDynamicNTKRotaryEmbedding, NomciBertGatedMLP,
NomicBertBlock with prenorm false, NomicBertModel, NomicBertPooler and
NomicBertForSequenceClassification; configuration_hf_nomic_bert.py's NomicBertConfig over
GPT2Config), written from a reading of that code as the public contrastors repository
(src/contrastors/models/encoder/) and the hub copy have it, plus the writer that makes the
fixtures model/testdata/families/fixtures/nomic_bert-{classify,multilabel,ner,qa,mlm}/ in
the layout make_fixtures.py gives the other families: config.json (GPT2Config's names,
as NomicBertConfig would save it), model.safetensors (tensor names as the task model's
state_dict), the tokenizer files and expected.json.

What NomicBERT computes, as read there:
- embeddings: word_embeddings + token_type_embeddings (type_vocab_size > 0; token_type_ids
  default zeros), no position embeddings when rotary_emb_fraction > 0; emb_ln (LayerNorm,
  layer_norm_epsilon); emb_drop (resid_pdrop). The word embeddings have
  ceil(vocab_size / pad_vocab_size_multiple) * pad_vocab_size_multiple rows
  (NomicBertModel pads the config's vocab_size).
- attention mask: get_extended_attention_mask, (1 - mask) * finfo(float32).min, added.
- each block, prenorm false: qkv = Wqkv(x) (bias qkv_proj_bias), rearranged
  "... (three h d) -> ... three h d"; rotary on q and k over rotary_emb_dim = head_dim *
  rotary_emb_fraction dimensions: inv_freq = 1 / base ** (arange(0, dim, 2, float32) /
  dim), freqs = outer(arange(L, float32), inv_freq), x[..., :dim] * cos + rotate_half(x[...,
  :dim]) * sin with cos, sin repeated "... d -> ... 1 (2 d)" (halves) or "(d 2)"
  (interleaved; rotate_half then pairs 2i with 2i+1), the rest of the head unrotated;
  with rotary_scaling_factor set (NomicBertConfig's default 1.0) the base becomes base *
  (factor * L / max_trained_positions - (factor - 1)) ** (dim / (dim - 2)) when L >
  max_trained_positions, else unchanged; scores q k^T / sqrt(head_dim) + mask, softmax,
  dropout (attn_pdrop), context; out_proj (bias qkv_proj_bias); x = norm1(dropout1(a) +
  x); gated MLP (activation_function swiglu, geglu, glu): y = fc11(x), gate = fc12(x)
  (bias mlp_fc1_bias), y * silu(gate) / y * gelu(gate) / glu(cat(y, gate)) = y *
  sigmoid(gate), fc2 (bias mlp_fc2_bias), hidden width n_inner (None: int(8 n_embd / 3))
  rounded up to a multiple of 256 (multiple_of, which the block leaves at its default);
  x = norm2(dropout2(mlp) + x).
- NomicBertForSequenceClassification: the pooler (dense, tanh) on the first token,
  dropout (classifier_dropout, else embd_pdrop), classifier. The hub code has no token
  classification or question answering class; bertnode gives those BERT's heads under
  the same base (BertForTokenClassification's classifier, BertForQuestionAnswering's
  qa_outputs), which these fixtures follow.
- NomicBertForPreTraining (task "mlm": reference.py's, and the fixture nomic_bert-mlm):
  cls.predictions.transform.dense (bias mlp_fc1_bias), SiLU for swiglu else exact GELU
  (its tanh GELUs are for activations no gated MLP has), transform.layer_norm
  (layer_norm_epsilon), then cls.predictions.decoder, whose weight is the word embeddings
  (tie_weights, always) and bias mlp_fc1_bias: read from contrastors'
  modeling_nomic_bert.py (NomicBertPredictionHeadTransform, NomicBertLMPredictionHead).

Why not the hub code itself: it needs transformers (and einops), which could not be
installed where these fixtures were made. So the logits in expected.json come from this
file, a reading of the hub code, checked by the --sanity checks below (a float64
per-element forward of one unpadded sequence with each pair's angles computed in Python
floats from the definition; padding invariance; the rotation's norm and relative-position
properties; the logits' dependence on the rotary base), not by the hub code itself.

The tokenizer: nomic-embed-text's is bert-base-uncased's (BertTokenizerFast). The
fixtures take the BERT fixtures' (make_fixtures.py made them with transformers'
BertTokenizerFast): each nomic_bert-<task> has bert-<task>'s vocab.txt,
tokenizer_config.json and special_tokens_map.json, and its batch (input_ids, attention
mask, token_type_ids of the same texts) is bert-<task>'s expected.json's; nomic_bert-mlm
has bert-classify's files, and its texts with [MASK] (fixturelib.py's masked_texts) are
encoded by tokenizers' npm binding (MLM below). Its expected.json keeps the logits at
some positions alone and adds labels and their loss, as ModernBERT's masked-LM fixtures.
nomic-embed's task prefixes ("search_query: ", "search_document: ", ...) are part of
the text.

Weights are random (fixturelib.py's random_weights: torch.Generator seeded 0, normal std
0.2 in registration order; LayerNorm weights 1 + that), n_embd 32, 4 heads (head size 8),
2 layers (3 for qa). Each fixture exercises other options (FIXTURES).

Rerun from the repository root with Debian's torch 1.13 (/usr/bin/python3), which made
the committed fixtures:

    mkdir -p /tmp/nodetok && (cd /tmp/nodetok && npm install tokenizers@0.23.2)
    make_nomic_bert.py --make /tmp/nodetok/node_modules
                                      rewrites the five fixture directories (the
                                      node modules encode the mlm one's texts)
    make_nomic_bert.py --sanity       the sanity checks below, on the committed fixtures
    make_nomic_bert.py --check DIR... checkpoint directories (config.json,
                                      model.safetensors, expected.json; bertnode's, kept
                                      with BERTNODE_KEEP_OURS) computed here against their
                                      expected.json, exiting non-zero above 1e-4
"""
import json
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # importing fixturelib would leave a __pycache__ in the repository
from fixturelib import (  # noqa: E402
    FMIN, Float64, Sanity, check_reference, encode_masked, expected_of, fresh_dir, layer_norm, linear, load_dir,
    main, masked_texts, mlm_loss, mlm_targets, random_weights, read_json, stored, task_config, write_checkpoint)
import fixturelib  # noqa: E402

REFERENCE = "reference implementation of nomic-ai/nomic-bert-2048's modeling_hf_nomic_bert.py (make_nomic_bert.py)"
TOKENIZER = "BertTokenizerFast (transformers), by way of the bert-<task> fixture"
MLM_TOKENIZER = "tokenizers@0.23.2 (npm): BertTokenizerFast's pipeline over bert-classify's vocab.txt"

GATES = {"swiglu": F.silu, "geglu": F.gelu, "glu": torch.sigmoid}

# Per-fixture options, so that each is exercised at least once.
FIXTURES = {
    # nomic-embed-text-v1.5's: swiglu, whole heads rotated by halves, base 1000, no biases
    # in attention and MLP, rotary_scaling_factor null.
    "classify": dict(n_layer=2, activation_function="swiglu", rotary_emb_fraction=1.0, rotary_emb_base=1000,
                     rotary_emb_interleaved=False, qkv_proj_bias=False, mlp_fc1_bias=False, mlp_fc2_bias=False,
                     n_inner=256, rotary_scaling_factor=None, layer_norm_epsilon=1e-12),
    # geglu; half of each head rotated, interleaved, base 10000; every bias.
    "multilabel": dict(n_layer=2, activation_function="geglu", rotary_emb_fraction=0.5, rotary_emb_base=10000,
                       rotary_emb_interleaved=True, qkv_proj_bias=True, mlp_fc1_bias=True, mlp_fc2_bias=True,
                       n_inner=256, rotary_scaling_factor=None, layer_norm_epsilon=1e-5),
    # swiglu; n_inner null (8/3 of 32 = 85, rounded up to 256); the vocabulary padded to a
    # multiple of 64 (400 -> 448 rows); rotary_scaling_factor absent (the config class's
    # 1.0), max_trained_positions 64, which no text reaches.
    "ner": dict(n_layer=2, activation_function="swiglu", rotary_emb_fraction=1.0, rotary_emb_base=1000,
                rotary_emb_interleaved=False, qkv_proj_bias=False, mlp_fc1_bias=False, mlp_fc2_bias=False,
                n_inner=None, pad_vocab_size_multiple=64, max_trained_positions=64, layer_norm_epsilon=1e-12),
    # glu, 3 layers; half of each head rotated by halves; Wqkv's and fc2's biases only;
    # rotary_scaling_factor 2.
    "qa": dict(n_layer=3, activation_function="glu", rotary_emb_fraction=0.5, rotary_emb_base=1000,
               rotary_emb_interleaved=False, qkv_proj_bias=True, mlp_fc1_bias=False, mlp_fc2_bias=True,
               n_inner=256, rotary_scaling_factor=2.0, max_trained_positions=2048, layer_norm_epsilon=1e-12),
}


class Cfg:
    """The values the model reads, with NomicBertConfig's (and GPT2Config's) defaults."""

    def __init__(self, d):
        self.raw = d
        g = d.get
        mult = g("pad_vocab_size_multiple", 1)
        self.vocab = -(-g("vocab_size", 50257) // mult) * mult
        self.hidden = g("n_embd", 768)
        self.heads = g("n_head", 12)
        self.layers = g("n_layer", 12)
        self.act = g("activation_function", "gelu_new")
        if self.act not in GATES:
            raise ValueError(f"activation_function {self.act}: only the gated MLP is implemented here")
        inner = g("n_inner") or int(8 * self.hidden / 3)
        self.inter = (inner + 255) // 256 * 256
        self.eps = g("layer_norm_epsilon", 1e-5)
        self.types = g("type_vocab_size", 2)
        self.head_dim = self.hidden // self.heads
        self.rot_dim = self.head_dim * g("rotary_emb_fraction", 0.0)  # a float, as the hub code's
        if self.rot_dim <= 0:
            raise ValueError("rotary_emb_fraction 0 (absolute positions) is not implemented here")
        self.base = float(g("rotary_emb_base", 1000))
        self.interleaved = g("rotary_emb_interleaved", False)
        self.scaling = g("rotary_scaling_factor", 1.0)
        self.max_trained = g("max_trained_positions", 2048)
        self.qkv_bias = g("qkv_proj_bias", True)
        self.fc1_bias = g("mlp_fc1_bias", True)
        self.fc2_bias = g("mlp_fc2_bias", True)
        self.num_labels = len(g("id2label") or {}) or 2
        for k, v in (("prenorm", False), ("parallel_block", False), ("use_rms_norm", False), ("causal", False),
                     ("rotary_emb_scale_base", None)):
            if g(k, v) != v:
                raise ValueError(f"{k} {g(k)} is not implemented here")


# ---------------------------------------------------------------------------------
# Parameters.

def param_shapes(cfg, task):
    """(name, shape) in the order the task model registers its parameters."""
    H, out = cfg.hidden, []

    def lin(prefix, n_out, n_in, bias=True):
        out.append((prefix + ".weight", (n_out, n_in)))
        if bias:
            out.append((prefix + ".bias", (n_out,)))

    out.append(("bert.embeddings.word_embeddings.weight", (cfg.vocab, H)))
    if cfg.types > 0:
        out.append(("bert.embeddings.token_type_embeddings.weight", (cfg.types, H)))
    out.extend([("bert.emb_ln.weight", (H,)), ("bert.emb_ln.bias", (H,))])
    for i in range(cfg.layers):
        p = f"bert.encoder.layers.{i}."
        lin(p + "attn.Wqkv", 3 * H, H, cfg.qkv_bias)
        lin(p + "attn.out_proj", H, H, cfg.qkv_bias)
        lin(p + "mlp.fc11", cfg.inter, H, cfg.fc1_bias)
        lin(p + "mlp.fc12", cfg.inter, H, cfg.fc1_bias)
        lin(p + "mlp.fc2", H, cfg.inter, cfg.fc2_bias)
        for n in ("norm1", "norm2"):
            out.extend([(p + n + ".weight", (H,)), (p + n + ".bias", (H,))])
    if task in ("classify", "multilabel", "regression", "choice"):
        lin("bert.pooler.dense", H, H)
        lin("classifier", 1 if task == "choice" else cfg.num_labels, H)
    elif task == "ner":
        lin("classifier", cfg.num_labels, H)
    elif task == "qa":
        lin("qa_outputs", 2, H)
    elif task == "mlm":  # NomicBertForPreTraining's cls; the decoder's weight is the word embeddings
        lin("cls.predictions.transform.dense", H, H, cfg.fc1_bias)
        out.extend([("cls.predictions.transform.layer_norm.weight", (H,)), ("cls.predictions.transform.layer_norm.bias", (H,))])
        if cfg.fc1_bias:
            out.append(("cls.predictions.decoder.bias", (cfg.vocab,)))
    return out


def is_norm(name):
    return "norm" in name or "emb_ln" in name


# ---------------------------------------------------------------------------------
# The forward, batched, float32, in the order of the hub code's operations.

def rotary_base(cfg, L):
    """NomicBertRotaryEmbedding's base, or NomicBertDynamicNTKRotaryEmbedding's for L."""
    if cfg.scaling and L > cfg.max_trained:
        return cfg.base * ((cfg.scaling * L / cfg.max_trained) - (cfg.scaling - 1)) ** (cfg.rot_dim / (cfg.rot_dim - 2))
    return cfg.base


def cos_sin(cfg, L, base=None):
    """_update_cos_sin_cache's tables [L, rot_dim / 2], float32."""
    base = rotary_base(cfg, L) if base is None else base
    inv_freq = 1.0 / (base ** (torch.arange(0, cfg.rot_dim, 2, dtype=torch.float32) / cfg.rot_dim))
    freqs = torch.outer(torch.arange(L, dtype=torch.float32), inv_freq)
    return torch.cos(freqs), torch.sin(freqs)


def rotate_half(x, interleaved):
    if not interleaved:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)  # "... d two -> ... (d two)"


def apply_rotary(x, cos, sin, interleaved):
    """apply_rotary_emb on x [B, L, heads, d]."""
    ro = cos.shape[-1] * 2
    if interleaved:  # "... d -> ... 1 (d 2)"
        cos, sin = cos.repeat_interleave(2, dim=-1), sin.repeat_interleave(2, dim=-1)
    else:  # "... d -> ... 1 (2 d)"
        cos, sin = torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)
    cos, sin = cos[:, None, :], sin[:, None, :]
    return torch.cat([x[..., :ro] * cos + rotate_half(x[..., :ro], interleaved) * sin, x[..., ro:]], dim=-1)


def mlp(cfg, w, p, x):
    y = linear(w, p + "mlp.fc11", x)
    gate = linear(w, p + "mlp.fc12", x)
    if cfg.act == "glu":
        y = F.glu(torch.cat([y, gate], dim=-1), dim=-1)
    else:
        y = y * GATES[cfg.act](gate)
    return linear(w, p + "mlp.fc2", y)


def encoder(cfg, w, input_ids, attention_mask, token_type_ids, base=None):
    """NomicBertModel's last hidden states [B, L, H]; base overrides the rotary base."""
    B, L = input_ids.shape
    x = F.embedding(input_ids, w["bert.embeddings.word_embeddings.weight"])
    if cfg.types > 0:
        x = x + F.embedding(token_type_ids, w["bert.embeddings.token_type_embeddings.weight"])
    x = layer_norm(w, "bert.emb_ln", x, cfg.eps)
    ext = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * FMIN
    cos, sin = cos_sin(cfg, L, base)
    d = cfg.head_dim
    norm_factor = torch.sqrt(torch.tensor(d, dtype=torch.float32))
    for i in range(cfg.layers):
        p = f"bert.encoder.layers.{i}."
        qkv = linear(w, p + "attn.Wqkv", x).view(B, L, 3, cfg.heads, d)
        q = apply_rotary(qkv[:, :, 0], cos, sin, cfg.interleaved).permute(0, 2, 1, 3)
        k = apply_rotary(qkv[:, :, 1], cos, sin, cfg.interleaved).permute(0, 2, 1, 3)
        v = qkv[:, :, 2].permute(0, 2, 1, 3)
        scores = torch.matmul(q, k.transpose(-1, -2)) / norm_factor + ext
        probs = F.softmax(scores, dim=-1)
        c = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(B, L, cfg.hidden)
        x = layer_norm(w, p + "norm1", linear(w, p + "attn.out_proj", c) + x, cfg.eps)
        x = layer_norm(w, p + "norm2", mlp(cfg, w, p, x) + x, cfg.eps)
    return x


def transform_act(cfg):
    """NomicBertPredictionHeadTransform's activation: SiLU for swiglu, else exact GELU (its
    tanh GELUs are for gelu_new, gelu_fast and gelu_pytorch_tanh, which Cfg refuses)."""
    return F.silu if cfg.act == "swiglu" else F.gelu


def head(cfg, w, task, h):
    if task == "mlm":
        x = layer_norm(w, "cls.predictions.transform.layer_norm", transform_act(cfg)(linear(w, "cls.predictions.transform.dense", h)), cfg.eps)
        return F.linear(x, w["bert.embeddings.word_embeddings.weight"], w.get("cls.predictions.decoder.bias"))
    if task in ("classify", "multilabel", "regression", "choice"):
        return linear(w, "classifier", torch.tanh(linear(w, "bert.pooler.dense", h[:, 0])))
    if task == "ner":
        return linear(w, "classifier", h)
    return linear(w, "qa_outputs", h)


def logits_of(cfg, w, task, input_ids, attention_mask, token_type_ids, base=None):
    with torch.no_grad():
        return head(cfg, w, task, encoder(cfg, w, input_ids, attention_mask, token_type_ids, base))


# ---------------------------------------------------------------------------------
# A second, deliberately naive forward for the sanity checks: float64, one unpadded
# sequence, one head, query and key at a time, each rotated pair's angle computed in
# Python floats from its definition.

def naive_rotate(cfg, x, pos):
    """x [d] of one head at position pos, float64: pairs (i, i + r/2), or (2i, 2i + 1)
    interleaved, turned by pos / base^(2i / r)."""
    r = int(cfg.rot_dim)
    out = x.clone()
    for i in range(r // 2):
        a, b = (2 * i, 2 * i + 1) if cfg.interleaved else (i, i + r // 2)
        theta = pos / cfg.base ** (2 * i / r)
        out[a] = x[a] * math.cos(theta) - x[b] * math.sin(theta)
        out[b] = x[b] * math.cos(theta) + x[a] * math.sin(theta)
    return out


def naive_logits(cfg, w, task, ids, types):
    f64 = Float64(w, cfg.eps)
    w, ln, lin = f64.w, f64.ln, f64.lin
    gate = {"swiglu": lambda g: g * torch.sigmoid(g), "geglu": f64.gelu, "glu": torch.sigmoid}[cfg.act]
    L, H, nh, D = len(ids), cfg.hidden, cfg.heads, cfg.head_dim
    h = w["bert.embeddings.word_embeddings.weight"][torch.tensor(ids)]
    if cfg.types > 0:
        h = h + w["bert.embeddings.token_type_embeddings.weight"][torch.tensor(types)]
    h = ln("bert.emb_ln", h)
    for i in range(cfg.layers):
        p = f"bert.encoder.layers.{i}."
        qkv = lin(p + "attn.Wqkv", h)
        ctx = torch.zeros(L, H, dtype=torch.float64)
        for hd in range(nh):
            q, k, v = (qkv[:, j * H + hd * D: j * H + (hd + 1) * D] for j in range(3))
            q = [naive_rotate(cfg, q[a], a) for a in range(L)]
            k = [naive_rotate(cfg, k[b], b) for b in range(L)]
            for a in range(L):
                pr = torch.softmax(torch.tensor([float(q[a] @ k[b]) / math.sqrt(D) for b in range(L)], dtype=torch.float64), 0)
                ctx[a, hd * D:(hd + 1) * D] = sum(pr[b] * v[b] for b in range(L))
        h = ln(p + "norm1", lin(p + "attn.out_proj", ctx) + h)
        m = lin(p + "mlp.fc2", lin(p + "mlp.fc11", h) * gate(lin(p + "mlp.fc12", h)))
        h = ln(p + "norm2", m + h)
    if task in ("classify", "multilabel"):
        return lin("classifier", torch.tanh(lin("bert.pooler.dense", h[0])))
    if task == "mlm":
        t = lin("cls.predictions.transform.dense", h)
        t = ln("cls.predictions.transform.layer_norm", t * torch.sigmoid(t) if cfg.act == "swiglu" else f64.gelu(t))
        return t @ w["bert.embeddings.word_embeddings.weight"].T + w.get("cls.predictions.decoder.bias", 0)
    return lin("classifier" if task == "ner" else "qa_outputs", h)


# ---------------------------------------------------------------------------------
# Fixtures.

def config_dict(task, opts, vocab_size):
    """config.json as NomicBertConfig(...).save_pretrained writes it (GPT2Config's keys
    with NomicBertConfig's), after NomicBertModel padded vocab_size, except where a
    fixture keeps the unpadded size to exercise the padding."""
    d = {
        "activation_function": opts["activation_function"], "attn_pdrop": 0.0, "bos_token_id": None, "causal": False,
        "dense_seq_output": True, "embd_pdrop": 0.1, "eos_token_id": None, "fused_bias_fc": False,
        "fused_dropout_add_ln": False, "initializer_range": 0.02, "layer_norm_epsilon": opts["layer_norm_epsilon"],
        "max_trained_positions": opts.get("max_trained_positions", 2048), "mlp_fc1_bias": opts["mlp_fc1_bias"],
        "mlp_fc2_bias": opts["mlp_fc2_bias"], "model_type": "nomic_bert", "n_embd": 32, "n_head": 4,
        "n_inner": opts["n_inner"], "n_layer": opts["n_layer"], "n_positions": 128,
        "pad_vocab_size_multiple": opts.get("pad_vocab_size_multiple", 1), "parallel_block": False,
        "parallel_block_tied_norm": False, "prenorm": False, "qkv_proj_bias": opts["qkv_proj_bias"],
        "resid_pdrop": 0.0, "rotary_emb_base": opts["rotary_emb_base"], "rotary_emb_fraction": opts["rotary_emb_fraction"],
        "rotary_emb_interleaved": opts["rotary_emb_interleaved"], "rotary_emb_scale_base": None,
        "transformers_version": "4.37.2", "type_vocab_size": 2, "use_flash_attn": False, "use_rms_norm": False,
        "use_xentropy": False, "vocab_size": vocab_size,
    }
    if "rotary_scaling_factor" in opts:
        d["rotary_scaling_factor"] = opts["rotary_scaling_factor"]
    return task_config(task, "NomicBert", d)


TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


# The masked-LM fixture, nomic_bert-mlm: nomic-bert-2048's kind (NomicBertForPreTraining,
# swiglu, whole heads rotated, base 1000, no biases, so no decoder bias), on texts with
# [MASK] that tokenizers' npm binding encodes with BertTokenizerFast's pipeline (lower
# case, BertPreTokenizer, WordPiece, [CLS] A [SEP]) over bert-classify's vocab.txt. Its
# model.safetensors also holds cls.predictions.decoder.weight, the word embeddings' tied
# copy that a torch.save of the state dict keeps and a loader ignores.
MLM = dict(n_layer=2, activation_function="swiglu", rotary_emb_fraction=1.0, rotary_emb_base=1000,
           rotary_emb_interleaved=False, qkv_proj_bias=False, mlp_fc1_bias=False, mlp_fc2_bias=False,
           n_inner=256, rotary_scaling_factor=None, layer_norm_epsilon=1e-12)

def make_mlm(npm):
    bert = os.path.join(fixturelib.OUT, "bert-classify")
    vocab = sum(1 for _ in open(os.path.join(bert, "vocab.txt"), encoding="utf-8"))
    d = fresh_dir("nomic_bert-mlm")
    for f in TOKENIZER_FILES:
        shutil.copy(os.path.join(bert, f), d)
    texts = masked_texts()
    enc = encode_masked(npm, os.path.join(bert, "vocab.txt"), texts)
    ids, mask, types = batch_of(enc)
    cfgd = dict(sorted(dict(config_dict("classify", MLM, vocab), architectures=["NomicBertForPreTraining"]).items()))
    for k in ("id2label", "label2id"):
        del cfgd[k]
    cfg = Cfg(cfgd)
    w = random_weights(param_shapes(cfg, "mlm"), is_norm)
    logits = logits_of(cfg, w, "mlm", ids, mask, types)
    extra = mlm_targets(ids, mask, enc["mask_id"], vocab)
    extra["loss"] = round(mlm_loss(logits, torch.tensor(extra["labels"])).item(), 7)
    exp = expected_of("mlm", REFERENCE, MLM_TOKENIZER, texts, ids, mask, types, stored("mlm", logits, extra))
    saved = dict(w, **{"cls.predictions.decoder.weight": w["bert.embeddings.word_embeddings.weight"]})
    write_checkpoint(d, cfgd, saved, dict(exp, **extra))
    print(f"nomic_bert-mlm: logits {list(logits.shape)}, |max| {logits.abs().max():.3f}, lengths {mask.sum(1).tolist()}")


def batch_of(exp):
    return torch.tensor(exp["input_ids"]), torch.tensor(exp["attention_mask"]), torch.tensor(exp["token_type_ids"])


def make_all(npm):
    make_mlm(npm)
    for task, opts in FIXTURES.items():
        bert = os.path.join(fixturelib.OUT, f"bert-{task}")
        src = read_json(os.path.join(bert, "expected.json"))
        vocab = sum(1 for _ in open(os.path.join(bert, "vocab.txt"), encoding="utf-8"))
        d = fresh_dir(f"nomic_bert-{task}")
        for f in TOKENIZER_FILES:
            shutil.copy(os.path.join(bert, f), d)
        cfgd = config_dict(task, opts, vocab)
        cfg = Cfg(cfgd)
        w = random_weights(param_shapes(cfg, task), is_norm)
        ids, mask, types = batch_of(src)
        logits = logits_of(cfg, w, task, ids, mask, types)
        write_checkpoint(d, cfgd, w, expected_of(task, REFERENCE, TOKENIZER, src["texts"], ids, mask, types, logits))
        print(f"nomic_bert-{task}: logits {list(logits.shape)}, |max| {logits.abs().max():.3f}, lengths {mask.sum(1).tolist()}")


def check(dirs):
    check_reference(dirs, Cfg, param_shapes, lambda cfg, w, exp: stored(exp["task"], logits_of(cfg, w, exp["task"], *batch_of(exp)), exp),
                    ignore=("cls.predictions.decoder.weight",))


# ---------------------------------------------------------------------------------
# Sanity checks.

def sanity():
    v = Sanity()
    claim, report = v.claim, v.report
    v.exact_gelu(fixturelib.activation("gelu"))
    g = torch.Generator().manual_seed(1)
    for interleaved, frac in ((False, 1.0), (True, 1.0), (False, 0.5), (True, 0.5)):
        cfg = Cfg({"activation_function": "swiglu", "n_embd": 32, "n_head": 2, "rotary_emb_fraction": frac,
                   "rotary_emb_interleaved": interleaved})
        q, k = torch.randn(2, 16, generator=g)
        cos, sin = cos_sin(cfg, 40)
        rotated = {x: apply_rotary(t.expand(1, 40, 1, 16), cos, sin, interleaved)[0, :, 0] for x, t in (("q", q), ("k", k))}
        what = f"rotary ({'interleaved' if interleaved else 'halves'}, fraction {frac})"
        report(f"{what}: norm kept", (rotated["q"].norm(dim=-1) - q.norm()).abs().max().item(), 1e-5)
        report(f"{what}: q.k depends on the distance alone ((3, 10) vs (23, 30))",
               abs(float(rotated["q"][3] @ rotated["k"][10]) - float(rotated["q"][23] @ rotated["k"][30])), 1e-5)
        naive = torch.stack([naive_rotate(cfg, q.double(), p) for p in range(40)])
        report(f"{what}: float32 tables vs per-pair float64 angles", (naive - rotated["q"].double()).abs().max().item(), 1e-5)
        r = int(cfg.rot_dim)
        claim(f"{what}: the {16 - r} unrotated dimensions are untouched", torch.equal(rotated["q"][:, r:], q[r:].expand(40, -1)))
    cfg = Cfg({"activation_function": "swiglu", "n_embd": 32, "n_head": 2, "rotary_emb_fraction": 1.0, "max_trained_positions": 8})
    claim(f"dynamic NTK: base {rotary_base(cfg, 8)} at 8 positions, {rotary_base(cfg, 16):.1f} at 16",
          rotary_base(cfg, 8) == 1000 and abs(rotary_base(cfg, 16) - 1000 * 2 ** (16 / 14)) < 1e-9)
    for task in FIXTURES:
        d = os.path.join(fixturelib.OUT, f"nomic_bert-{task}")
        cfg, w, exp = load_dir(d, Cfg)
        ids, mask, types = batch_of(exp)
        bert = read_json(os.path.join(fixturelib.OUT, f"bert-{task}", "expected.json"))
        claim(f"{task}: the batch is bert-{task}'s", all(exp[k] == bert[k] for k in ("texts", "input_ids", "attention_mask", "token_type_ids")))
        claim(f"{task}: no text reaches max_trained_positions {cfg.max_trained}", ids.shape[1] <= cfg.max_trained)
        base = logits_of(cfg, w, task, ids, mask, types)
        v.expected(task, base, exp)
        delta = (logits_of(cfg, w, task, ids, mask, types, base=cfg.base * 10) - base).abs().max().item()
        claim(f"{task}: with 10 times the rotary base the logits change by {delta:.3g}", delta > 1e-2)
        v.per_sequence(
            task, mask, base, lambda r, n: logits_of(cfg, w, task, ids[r:r + 1, :n], mask[r:r + 1, :n], types[r:r + 1, :n])[0],
            lambda r, n: naive_logits(cfg, w, task, ids[r, :n].tolist(), types[r, :n].tolist()))
    cfg, w, exp = load_dir(os.path.join(fixturelib.OUT, "nomic_bert-mlm"), Cfg)
    claim("mlm: the checkpoint's decoder weight is the word embeddings",
          torch.equal(w.pop("cls.predictions.decoder.weight"), w["bert.embeddings.word_embeddings.weight"]))
    ids, mask, types = batch_of(exp)
    base = logits_of(cfg, w, "mlm", ids, mask, types)
    report("mlm: this code vs expected.json", (stored("mlm", base, exp).reshape(-1) - torch.tensor(exp["logits"])).abs().max().item(), 2e-7)
    report("mlm: loss vs expected.json", abs(mlm_loss(base, torch.tensor(exp["labels"])).item() - exp["loss"]), 1e-6)
    v.per_sequence(
        "mlm", mask, base, lambda r, n: logits_of(cfg, w, "mlm", ids[r:r + 1, :n], mask[r:r + 1, :n], types[r:r + 1, :n])[0],
        lambda r, n: naive_logits(cfg, w, "mlm", ids[r, :n].tolist(), types[r, :n].tolist()))
    v.done()


if __name__ == "__main__":
    main(__doc__, check, sanity, make_all, "--make", 1)
