"""ModernBERT fixtures for TestFamiliesMatchTransformersFixtures, made without transformers.

What this is: an independent PyTorch implementation of the *eager* forward of
transformers' ModernBERT (model_type "modernbert": ModernBertModel and the
ModernBertForSequenceClassification, ModernBertForTokenClassification,
ModernBertForQuestionAnswering and ModernBertForMaskedLM heads), written from a reading of
src/transformers/models/modernbert/modeling_modernbert.py at transformers commit
000c33fdfde12e1ffafbfcdb3c926df5727a00b6 and configuration_modernbert.py at commit
001f85b38fb432858ace93f18622f07cec46d874 (transformers 5.x, with layer_types and
per-layer-type rope_parameters), plus the file writer that makes the fixtures
model/testdata/families/fixtures/modernbert-{classify,multilabel,ner,qa,mlm,mlm-untied}/
in the layout make_fixtures.py gives the other families: config.json, model.safetensors
(tensor names as transformers' state_dict of the task class, as save_pretrained writes
them: a tied decoder.weight left out), tokenizer.json, tokenizer_config.json,
special_tokens_map.json and expected.json. The masked-LM fixtures encode texts with [MASK]
in them; their expected.json keeps the logits at some positions alone (each [MASK], each
text's first and last token) and adds labels and the loss ModernBertForMaskedLM computes
from them (without sparse prediction, which gives the same mean).

Why not transformers: it could not be installed where these fixtures were made (no
PyPI; its source snapshot too large to fetch), and the ModernBERT of transformers 5
needs a torch newer than the Debian torch 1.13 there. So the logits in expected.json
come from this file, not from transformers: a second reading of transformers' code,
checked by the --sanity checks below (a float64 per-token re-implementation with
explicit windows, padding invariance, window >= 2L equal to global attention, rotary
and GELU against hand computation), not by transformers itself. Treat a disagreement
between bertnode and these fixtures as a question to settle against transformers'
source, not as proof either way.

The committed fixtures were made with Debian's torch 1.13.0a0 (/usr/bin/python3) and
Hugging Face tokenizers' npm binding tokenizers@0.23.2 (node 20), which trains the
tokenizer (byte-level BPE on make_fixtures.py's corpus, fixturelib.py's corpus(), 139
merges, ModernBERT's specials [UNK] [CLS] [SEP] [PAD] [MASK] after the BPE vocabulary,
[MASK] lstrip, TemplateProcessing "[CLS] $A [SEP]" / "[CLS] $A [SEP] $B:1 [SEP]:1",
ByteLevel pre-tokenizer without prefix space and ByteLevel decoder, as ModernBERT's
tokenizer.json has; saved without pretty-printing, to keep the fixtures small) and
encodes the texts (make_fixtures.py's, from fixturelib.py: padded to the longest in the
batch with [PAD], truncated to 64, question/context pairs for qa). ModernBERT has no
token types: token_type_ids in expected.json are zeros.

Weights are random (fixturelib.py's random_weights: torch.Generator seeded 0, normal std
0.2 in registration order; LayerNorm weights 1 + that, as make_fixtures.py's
scale_weights), hidden size 32, 4 heads, 3 layers (4 for qa), local_attention 8 so the
sliding window (|i - j| <= 4) is much shorter than the texts. Each fixture exercises
other options (see FIXTURES); ner's config.json uses only the older hub spelling
(global_rope_theta / local_rope_theta, no layer_types or rope_parameters), which
transformers 5 still reads.

Rerun from the repository root (rewrites the fixture directories; the masked-LM ones
were added later, on a machine whose sgemm kernel put the older fixtures' logits up to
3.1e-6 from their committed values, within --sanity's float32 rounding bound):

    mkdir -p /tmp/nodetok && (cd /tmp/nodetok && npm install tokenizers@0.23.2)
    /usr/bin/python3 model/testdata/families/make_modernbert.py --npm-tokenizers /tmp/nodetok/node_modules

    /usr/bin/python3 model/testdata/families/make_modernbert.py --sanity

runs the sanity checks on the committed fixtures, and

    /usr/bin/python3 model/testdata/families/make_modernbert.py --check DIR...

loads checkpoint directories (config.json + model.safetensors + expected.json, e.g. the
ones bertnode saves when BERTNODE_KEEP_OURS names a folder) with this implementation and
compares their logits with expected.json's, exiting non-zero above 1e-4.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # importing fixturelib would leave a __pycache__ in the repository
# fixturelib.py, beside this file: the texts, tasks, weights, safetensors and checks
# the fixture scripts share.
from fixturelib import (  # noqa: E402
    FMIN, OUT, QA_PAIRS, Float64, Sanity, activation, check_reference, expected_of, fresh_dir, layer_norm,
    linear, load_dir, main, masked_texts, mlm_loss, mlm_targets, per_sequence, random_weights, sms_texts, stored,
    task_config, write_checkpoint, write_corpus, write_json)

MODELING_COMMIT = "000c33fdfde12e1ffafbfcdb3c926df5727a00b6"
CONFIG_COMMIT = "001f85b38fb432858ace93f18622f07cec46d874"
REFERENCE = f"reference implementation of transformers@{MODELING_COMMIT} (make_modernbert.py)"
NPM_TOKENIZERS = "tokenizers@0.23.2 (npm)"

# Per-fixture options, chosen so each option is exercised at least once. A fixture's name
# is modernbert-<key>; its task the key's part before "-". decoder_bias and
# tie_word_embeddings are the config's defaults (True) where not given.
FIXTURES = {
    "classify": dict(num_hidden_layers=3, global_attn_every_n_layers=2, classifier_pooling="cls",
                     norm_bias=False, attention_bias=False, mlp_bias=False, classifier_bias=False, old_spelling=False),
    "multilabel": dict(num_hidden_layers=3, global_attn_every_n_layers=3, classifier_pooling="mean",
                       norm_bias=True, attention_bias=True, mlp_bias=True, classifier_bias=False, old_spelling=False),
    "ner": dict(num_hidden_layers=3, global_attn_every_n_layers=2, classifier_pooling="cls",
                norm_bias=False, attention_bias=False, mlp_bias=False, classifier_bias=True, old_spelling=True),
    "qa": dict(num_hidden_layers=4, global_attn_every_n_layers=3, classifier_pooling="cls",
               norm_bias=True, attention_bias=False, mlp_bias=False, classifier_bias=False, old_spelling=False),
    # ModernBertForMaskedLM as the hub's checkpoints have it (ModernBERT-base's biases),
    # and untied, without the decoder's bias, with every other bias and another activation.
    "mlm": dict(num_hidden_layers=3, global_attn_every_n_layers=2, classifier_pooling="cls",
                norm_bias=False, attention_bias=False, mlp_bias=False, classifier_bias=False, old_spelling=True),
    "mlm-untied": dict(num_hidden_layers=3, global_attn_every_n_layers=3, classifier_pooling="cls",
                       norm_bias=True, attention_bias=True, mlp_bias=True, classifier_bias=True, old_spelling=False,
                       decoder_bias=False, tie_word_embeddings=False, classifier_activation="silu"),
}

SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
NUM_MERGES = 139


# ---------------------------------------------------------------------------------
# Configuration: the values the model reads, resolved as ModernBertConfig resolves them.

class Cfg:
    def __init__(self, d):
        self.raw = d
        g = d.get
        self.hidden = g("hidden_size", 768)
        self.heads = g("num_attention_heads", 12)
        self.layers = g("num_hidden_layers", 22)
        self.inter = g("intermediate_size", 1152)
        self.eps = g("norm_eps", 1e-5)
        self.norm_bias = g("norm_bias", False)
        self.attention_bias = g("attention_bias", False)
        self.mlp_bias = g("mlp_bias", False)
        self.classifier_bias = g("classifier_bias", False)
        self.decoder_bias = g("decoder_bias", True)
        self.tied = g("tie_word_embeddings", True)
        self.hidden_act = g("hidden_activation", "gelu")
        self.classifier_act = g("classifier_activation", "gelu")
        self.pooling = g("classifier_pooling", "cls")
        self.local_attention = g("local_attention", 128)
        # The window is decided by the layer index and global_attn_every_n_layers (default
        # 3) in the attention module; the rotary theta by layer_types. Both kept apart here.
        self.every = g("global_attn_every_n_layers", 3)
        types = g("layer_types")
        if types is None:
            types = ["sliding_attention" if i % self.every else "full_attention" for i in range(self.layers)]
        self.layer_types = types
        rp = dict(g("rope_parameters") or {})
        full = dict(rp.get("full_attention") or {})
        slide = dict(rp.get("sliding_attention") or {})
        full.setdefault("rope_theta", g("global_rope_theta", 160000.0))
        slide.setdefault("rope_theta", g("local_rope_theta", 10000.0))
        for p in (full, slide):
            if p.get("rope_type", "default") != "default":
                raise ValueError(f"rope_type {p['rope_type']} is not implemented here")
        self.theta = {"full_attention": full["rope_theta"], "sliding_attention": slide["rope_theta"]}
        self.num_labels = len(g("id2label") or {}) or 2
        self.head_dim = self.hidden // self.heads

    def is_local(self, i):
        return i % self.every != 0


# ---------------------------------------------------------------------------------
# Parameters: names, shapes, random values.

def param_shapes(cfg, task):
    """(name, shape) in the order the task class registers its parameters."""
    H, I = cfg.hidden, cfg.inter
    out = [("model.embeddings.tok_embeddings.weight", (cfg.raw["vocab_size"], H))]

    def norm(prefix):
        out.append((prefix + ".weight", (H,)))
        if cfg.norm_bias:
            out.append((prefix + ".bias", (H,)))

    def linear(prefix, n_out, n_in, bias):
        out.append((prefix + ".weight", (n_out, n_in)))
        if bias:
            out.append((prefix + ".bias", (n_out,)))

    norm("model.embeddings.norm")
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        if i > 0:
            norm(p + "attn_norm")
        linear(p + "attn.Wqkv", 3 * H, H, cfg.attention_bias)
        linear(p + "attn.Wo", H, H, cfg.attention_bias)
        norm(p + "mlp_norm")
        linear(p + "mlp.Wi", 2 * I, H, cfg.mlp_bias)
        linear(p + "mlp.Wo", H, I, cfg.mlp_bias)
    norm("model.final_norm")
    linear("head.dense", H, H, cfg.classifier_bias)
    norm("head.norm")
    if task != "mlm":
        linear("classifier", cfg.num_labels, H, True)
    elif cfg.tied:  # decoder.weight is the token embeddings: one parameter, saved once
        if cfg.decoder_bias:
            out.append(("decoder.bias", (cfg.raw["vocab_size"],)))
    else:
        linear("decoder", cfg.raw["vocab_size"], H, cfg.decoder_bias)
    return out


def is_norm(name):
    return "norm" in name.split(".")[-2]


# ---------------------------------------------------------------------------------
# The forward.

def rope_inv_freq(theta, dim):
    # float32 exponents, a float32 power of the Python float base, then its reciprocal.
    exps = torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float32) / dim
    return 1.0 / (theta ** exps)


def rope_cos_sin(theta, dim, seq_len):
    inv = rope_inv_freq(theta, dim)
    pos = torch.arange(seq_len).to(torch.float32)
    angles = inv[None, :, None] @ pos[None, None, :]  # [1, dim/2, L]; one product per entry
    angles = angles.transpose(1, 2)  # [1, L, dim/2]
    both = torch.cat((angles, angles), dim=-1)
    return both.cos(), both.sin()


def half_turn(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rotate(x, cos, sin):
    # x: [B, heads, L, D]; cos, sin: [1, L, D]
    return x * cos[:, None] + half_turn(x) * sin[:, None]


def masks(cfg, attention_mask, L, force_global=False):
    """Additive masks [B, 1, L, L]: padding keys at float32's min, and the sliding
    variant, the same with every key farther than local_attention // 2 set to the min
    (set, not added: a padding key out of the window is min, not 2 * min)."""
    m = attention_mask.to(torch.float32)[:, None, None, :].expand(-1, 1, L, L)
    inv = 1.0 - m
    full = inv.masked_fill(inv.to(torch.bool), FMIN)
    idx = torch.arange(L)[None, :]
    far = (idx - idx.T).abs() > cfg.local_attention // 2
    sliding = full if force_global else full.masked_fill(far[None, None], FMIN)
    return full, sliding


def encoder(cfg, w, input_ids, attention_mask, force_global=False):
    B, L = input_ids.shape
    H, nh, D = cfg.hidden, cfg.heads, cfg.head_dim
    act = activation(cfg.hidden_act)
    h = F.embedding(input_ids, w["model.embeddings.tok_embeddings.weight"])
    h = layer_norm(w, "model.embeddings.norm", h, cfg.eps)
    rope = {t: rope_cos_sin(cfg.theta[t], D, L) for t in set(cfg.layer_types)}
    full_mask, sliding_mask = masks(cfg, attention_mask, L, force_global)
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        x = h if i == 0 else layer_norm(w, p + "attn_norm", h, cfg.eps)
        qkv = linear(w, p + "attn.Wqkv", x).view(B, L, 3, nh, D)
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))  # [B, nh, L, D]
        cos, sin = rope[cfg.layer_types[i]]
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        scores = torch.matmul(q, k.transpose(2, 3)) * (D ** -0.5)
        scores = scores + (sliding_mask if cfg.is_local(i) else full_mask)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(B, L, H)
        h = h + linear(w, p + "attn.Wo", ctx)
        y = layer_norm(w, p + "mlp_norm", h, cfg.eps)
        a, gate = linear(w, p + "mlp.Wi", y).chunk(2, dim=-1)
        h = h + linear(w, p + "mlp.Wo", act(a) * gate)
    return layer_norm(w, "model.final_norm", h, cfg.eps)


def decoder_weight(cfg, w):
    return w["model.embeddings.tok_embeddings.weight"] if cfg.tied else w["decoder.weight"]


def head(cfg, w, task, x):
    """ModernBertPredictionHead, then the classifier, or ModernBertForMaskedLM's decoder."""
    x = activation(cfg.classifier_act)(linear(w, "head.dense", x))
    x = layer_norm(w, "head.norm", x, cfg.eps)
    if task == "mlm":
        return F.linear(x, decoder_weight(cfg, w), w.get("decoder.bias"))
    return linear(w, "classifier", x)


def logits_of(cfg, w, task, input_ids, attention_mask, force_global=False):
    """[B, N] for classify and multilabel, [B, L, N] for ner, [B, L, 2] (start, end) for
    qa, [B, L, V] for mlm."""
    with torch.no_grad():
        h = encoder(cfg, w, input_ids, attention_mask, force_global)
        if task in ("classify", "multilabel"):
            if cfg.pooling == "cls":
                pooled = h[:, 0]
            else:
                pooled = (h * attention_mask.unsqueeze(-1)).sum(dim=1) / attention_mask.sum(dim=1, keepdim=True)
            return head(cfg, w, task, pooled)
        return head(cfg, w, task, h)


# ---------------------------------------------------------------------------------
# A second, deliberately naive forward for the sanity checks: float64, one unpadded
# sequence at a time, one query and head at a time, windows as explicit index ranges,
# rotary as explicit pair rotations with angles computed in float64 from the float32
# inverse frequencies.

def naive_logits(cfg, w, task, ids):
    f64 = Float64(w, cfg.eps)
    w, ln, lin, gelu = f64.w, f64.ln, f64.lin, f64.gelu
    L, H, nh, D = len(ids), cfg.hidden, cfg.heads, cfg.head_dim
    half = D // 2

    def rot(vec, pos, inv):
        out = vec.clone()
        for j in range(half):
            a = pos * float(inv[j])
            c, s = math.cos(a), math.sin(a)
            out[j] = vec[j] * c - vec[j + half] * s
            out[j + half] = vec[j + half] * c + vec[j] * s
        return out

    h = ln("model.embeddings.norm", w["model.embeddings.tok_embeddings.weight"][torch.tensor(ids)])
    for i in range(cfg.layers):
        p = f"model.layers.{i}."
        x = h if i == 0 else ln(p + "attn_norm", h)
        inv = rope_inv_freq(cfg.theta[cfg.layer_types[i]], D)
        W = w[p + "attn.Wqkv.weight"]
        bqkv = w.get(p + "attn.Wqkv.bias", torch.zeros(3 * H, dtype=torch.float64))
        ctx = torch.zeros(L, H, dtype=torch.float64)
        r = cfg.local_attention // 2 if cfg.is_local(i) else L
        for hd in range(nh):
            rows = slice(hd * D, (hd + 1) * D)
            q = x @ W[rows].T + bqkv[rows]
            k = x @ W[H:][rows].T + bqkv[H:][rows]
            v = x @ W[2 * H:][rows].T + bqkv[2 * H:][rows]
            q = torch.stack([rot(q[t], t, inv) for t in range(L)])
            k = torch.stack([rot(k[t], t, inv) for t in range(L)])
            for t in range(L):
                keys = list(range(max(0, t - r), min(L, t + r + 1)))
                s = torch.stack([q[t] @ k[j] for j in keys]) / math.sqrt(D)
                pr = torch.softmax(s, 0)
                ctx[t, rows] = sum(pr[n] * v[j] for n, j in enumerate(keys))
        h = h + lin(p + "attn.Wo", ctx)
        y = lin(p + "mlp.Wi", ln(p + "mlp_norm", h))
        h = h + lin(p + "mlp.Wo", gelu(y[:, :cfg.inter]) * y[:, cfg.inter:])
    h = ln("model.final_norm", h)
    if task in ("classify", "multilabel"):
        h = h[0] if cfg.pooling == "cls" else h.mean(0)
    act = gelu if cfg.classifier_act == "gelu" else (lambda x: x * torch.sigmoid(x))  # silu
    y = ln("head.norm", act(lin("head.dense", h)))
    if task == "mlm":
        return y @ decoder_weight(cfg, w).T + w.get("decoder.bias", torch.zeros(()))
    return lin("classifier", y)


# ---------------------------------------------------------------------------------
# Tokenizer, through tokenizers' npm binding.

TOKENIZER_JS = r"""
const t = require('tokenizers')
const fs = require('fs')
const path = require('path')

async function main() {
  const [corpusPath, outDir, nMerges, jobsPath, resultPath] = process.argv.slice(2)
  const specials = JSON.parse(process.env.MODERNBERT_SPECIALS)
  const trainer = new t.Tokenizer(t.BPE.empty())
  trainer.setPreTokenizer(t.byteLevelPreTokenizer(false, true))
  trainer.train([corpusPath])
  const tmp = path.join(outDir, 'trained.tmp.json')
  trainer.save(tmp)
  const trained = JSON.parse(fs.readFileSync(tmp, 'utf8'))
  fs.unlinkSync(tmp)
  const merges = trained.model.merges.slice(0, Number(nMerges)).map((m) => (Array.isArray(m) ? m : m.split(' ')))
  const vocab = {}
  const add = (tok) => { if (!(tok in vocab)) vocab[tok] = Object.keys(vocab).length }
  for (const c of t.byteLevelAlphabet().sort((a, b) => a.codePointAt(0) - b.codePointAt(0))) add(c)
  for (const [a, b] of merges) add(a + b)
  for (const s of specials) add(s)
  const special = (content) => ({ id: vocab[content], content, single_word: false, lstrip: content === '[MASK]',
    rstrip: false, normalized: false, special: true })
  const tok = (id, typeId) => ({ SpecialToken: { id, type_id: typeId } })
  const seq = (id, typeId) => ({ Sequence: { id, type_id: typeId } })
  const spec = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: specials.map(special),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [tok('[CLS]', 0), seq('A', 0), tok('[SEP]', 0)],
      pair: [tok('[CLS]', 0), seq('A', 0), tok('[SEP]', 0), seq('B', 1), tok('[SEP]', 1)],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  }
  const built = t.Tokenizer.fromString(JSON.stringify(spec))
  const out = path.join(outDir, 'tokenizer.json')
  built.save(out, false)

  const tk = t.Tokenizer.fromFile(out)
  tk.setTruncation(64)
  const jobs = JSON.parse(fs.readFileSync(jobsPath, 'utf8'))
  const result = { vocab_size: Object.keys(tk.getVocab(true)).length, ids: {}, batches: {} }
  for (const s of specials) result.ids[s] = tk.tokenToId(s)
  const enc = (x) => tk.encode(...(Array.isArray(x) ? x : [x, null]))
  for (const [name, texts] of Object.entries(jobs)) {
    tk.disablePadding()
    const single = []
    for (const x of texts) single.push((await enc(x)).getIds())
    // padded by the tokenizer to the longest in the batch, as padding=True pads
    tk.setPadding({ maxLength: Math.max(...single.map((s) => s.length)), padId: vocab['[PAD]'], padToken: '[PAD]' })
    const b = { input_ids: [], attention_mask: [] }
    for (const [i, x] of texts.entries()) {
      const e = await enc(x)
      if (single[i].some((id, j) => id !== e.getIds()[j])) throw new Error(`padded and unpadded encodings differ: ${name} ${i}`)
      b.input_ids.push(e.getIds())
      b.attention_mask.push(e.getAttentionMask())
    }
    result.batches[name] = b
  }
  fs.writeFileSync(resultPath, JSON.stringify(result))
}
main().catch((e) => { console.error(e); process.exit(1) })
"""


def make_tokenizer(npm, tmp):
    """Trains and saves tokenizer.json into tmp; returns the encoded batches and ids."""
    text = write_corpus(os.path.join(tmp, "corpus.txt"))
    jobs = {"single": sms_texts(), "pair": [list(p) for p in QA_PAIRS], "masked": masked_texts()}
    with open(os.path.join(tmp, "jobs.json"), "w") as f:
        json.dump(jobs, f)
    js = os.path.join(tmp, "tokenizer.js")
    with open(js, "w") as f:
        f.write(TOKENIZER_JS)
    env = dict(os.environ, NODE_PATH=npm, MODERNBERT_SPECIALS=json.dumps(SPECIALS))
    subprocess.run(["node", js, text, tmp, str(NUM_MERGES), os.path.join(tmp, "jobs.json"), os.path.join(tmp, "result.json")],
                   check=True, env=env)
    with open(os.path.join(tmp, "result.json")) as f:
        return jobs, json.load(f)


def special_entry(content):
    return {"content": content, "lstrip": content == "[MASK]", "normalized": False, "rstrip": False, "single_word": False}


def tokenizer_files(ids):
    """tokenizer_config.json and special_tokens_map.json as transformers saves them for a
    PreTrainedTokenizerFast with ModernBERT's special tokens."""
    decoder = {str(ids[s]): dict(special_entry(s), special=True) for s in SPECIALS}
    config = {
        "added_tokens_decoder": dict(sorted(decoder.items(), key=lambda kv: int(kv[0]))),
        "clean_up_tokenization_spaces": True,
        "cls_token": "[CLS]",
        "extra_special_tokens": {},
        "mask_token": "[MASK]",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 64,
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "[UNK]",
    }
    smap = {k: special_entry(v) for k, v in
            [("cls_token", "[CLS]"), ("mask_token", "[MASK]"), ("pad_token", "[PAD]"), ("sep_token", "[SEP]"), ("unk_token", "[UNK]")]}
    return config, smap


# ---------------------------------------------------------------------------------
# Fixtures.

def config_dict(task, opts, vocab_size, ids):
    """config.json's keys: ModernBertForMaskedLM's as transformers saves a fresh one (no
    labels), the other tasks' with task_config's."""
    layers, every = opts["num_hidden_layers"], opts["global_attn_every_n_layers"]
    d = {
        "attention_bias": opts["attention_bias"],
        "attention_dropout": 0.0,
        "bos_token_id": ids["[CLS]"],
        "classifier_activation": opts.get("classifier_activation", "gelu"),
        "classifier_bias": opts["classifier_bias"],
        "classifier_dropout": 0.0,
        "classifier_pooling": opts["classifier_pooling"],
        "cls_token_id": ids["[CLS]"],
        "decoder_bias": opts.get("decoder_bias", True),
        "deterministic_flash_attn": False,
        "embedding_dropout": 0.0,
        "eos_token_id": ids["[SEP]"],
        "global_attn_every_n_layers": every,
        "hidden_activation": "gelu",
        "hidden_size": 32,
        "initializer_cutoff_factor": 2.0,
        "initializer_range": 0.02,
        "intermediate_size": 24,
        "local_attention": 8,
        "max_position_embeddings": 64,
        "mlp_bias": opts["mlp_bias"],
        "mlp_dropout": 0.0,
        "model_type": "modernbert",
        "norm_bias": opts["norm_bias"],
        "norm_eps": 1e-05,
        "num_attention_heads": 4,
        "num_hidden_layers": layers,
        "pad_token_id": ids["[PAD]"],
        "sep_token_id": ids["[SEP]"],
        "sparse_pred_ignore_index": -100,
        "sparse_prediction": False,
        "tie_word_embeddings": opts.get("tie_word_embeddings", True),
        "vocab_size": vocab_size,
    }
    if opts["old_spelling"]:  # as hub checkpoints (transformers 4.x) spell it
        d.update(global_rope_theta=160000.0, local_rope_theta=10000.0, torch_dtype="float32", transformers_version="4.48.0")
    else:
        d.update(
            dtype="float32", transformers_version="5.0.0.dev0",
            layer_types=["sliding_attention" if i % every else "full_attention" for i in range(layers)],
            rope_parameters={"full_attention": {"rope_theta": 160000.0, "rope_type": "default"},
                             "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}})
    if task == "mlm":
        return dict(sorted(dict(d, architectures=["ModernBertForMaskedLM"]).items()))
    return task_config(task, "ModernBert", d)


def make_all(npm):
    tmp = tempfile.mkdtemp(prefix="modernbert-tok-")
    try:
        jobs, tok = make_tokenizer(npm, tmp)
        ids = tok["ids"]
        tok_config, smap = tokenizer_files(ids)
        for key, opts in FIXTURES.items():
            task, name = key.split("-")[0], f"modernbert-{key}"
            d = fresh_dir(name)
            shutil.copy(os.path.join(tmp, "tokenizer.json"), os.path.join(d, "tokenizer.json"))
            write_json(os.path.join(d, "tokenizer_config.json"), tok_config)
            write_json(os.path.join(d, "special_tokens_map.json"), smap)
            cfgd = config_dict(task, opts, tok["vocab_size"], ids)
            cfg = Cfg(cfgd)
            w = random_weights(param_shapes(cfg, task), is_norm)
            job = {"qa": "pair", "mlm": "masked"}.get(task, "single")
            enc = tok["batches"][job]
            input_ids, mask = torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"])
            logits = logits_of(cfg, w, task, input_ids, mask)
            extra = {}
            if task == "mlm":
                extra = mlm_targets(input_ids, mask, ids["[MASK]"], tok["vocab_size"])
                extra["loss"] = round(mlm_loss(logits, torch.tensor(extra["labels"])).item(), 7)
            exp = expected_of(task, REFERENCE, NPM_TOKENIZERS, jobs[job], input_ids, mask,
                              torch.zeros_like(input_ids), stored(task, logits, extra))
            write_checkpoint(d, cfgd, w, dict(exp, **extra))
            wide = dict(cfgd, local_attention=1000)
            differs = (logits_of(Cfg(wide), w, task, input_ids, mask) - logits).abs().max().item()
            print(f"{name}: logits {list(logits.shape)}, |max| {logits.abs().max():.3f}, lengths {mask.sum(1).tolist()}, "
                  f"max |change| with local_attention 1000: {differs:.3g}")
    finally:
        shutil.rmtree(tmp)


def check(dirs):
    check_reference(dirs, Cfg, param_shapes, lambda cfg, w, exp: stored(exp["task"], logits_of(
        cfg, w, exp["task"], torch.tensor(exp["input_ids"]), torch.tensor(exp["attention_mask"])), exp))


# ---------------------------------------------------------------------------------
# Sanity checks.

def sanity():
    v = Sanity()
    # Rotary against hand computation: a known vector at position 5, theta 10000, D 8.
    D, pos, theta = 8, 5, 10000.0
    x = torch.arange(1.0, D + 1)
    cos, sin = rope_cos_sin(theta, D, pos + 1)
    got = rotate(x[None, None, None], cos[:, pos:pos + 1], sin[:, pos:pos + 1]).reshape(-1)
    want = []
    for j in range(D):
        i = j % (D // 2)
        a = pos * theta ** (-2 * i / D)
        want.append(x[j].item() * math.cos(a) + (-x[j + D // 2].item() if j < D // 2 else x[j - D // 2].item()) * math.sin(a))
    v.report("rotary of (1..8) at position 5, theta 1e4, vs float64 hand computation", (got.double() - torch.tensor(want)).abs().max().item(), 1e-5)
    inv = rope_inv_freq(160000.0, D)
    hand = torch.tensor([160000.0 ** (-2 * i / D) for i in range(D // 2)], dtype=torch.float64)
    print(f"     inv_freq(160000, 8) float32 {inv.tolist()} vs float64 {hand.tolist()}: "
          f"max rel diff {((inv.double() - hand) / hand).abs().max().item():.2g}")
    v.exact_gelu(activation("gelu"))

    for key in FIXTURES:
        task = key.split("-")[0]
        cfg, w, exp = load_dir(os.path.join(OUT, f"modernbert-{key}"), Cfg)
        ids, mask = torch.tensor(exp["input_ids"]), torch.tensor(exp["attention_mask"])
        base = logits_of(cfg, w, task, ids, mask)
        v.expected(key, stored(task, base, exp), exp)
        if task == "mlm":
            labels = torch.tensor(exp["labels"])
            full = F.cross_entropy(base.reshape(-1, base.shape[-1]), labels.reshape(-1), reduction="none")
            picked = full[labels.reshape(-1) != -100].mean().item()
            v.report(f"{key}: loss vs the mean of each labelled position's cross-entropy", abs(picked - exp["loss"]), 1e-6)
        # (a) a window covering the whole sequence is global attention, bit for bit.
        wide = Cfg(dict(cfg.raw, local_attention=2 * ids.shape[1]))
        a = logits_of(wide, w, task, ids, mask)
        b = logits_of(cfg, w, task, ids, mask, force_global=True)
        v.report(f"{key}: (a) local_attention 2L vs every layer with the global mask", (a - b).abs().max().item(), 0.0)
        change = (a - base).abs().max().item()
        v.claim(f"{key}: the window of 8 matters: max |change| with a full window {change:.3g}", change > 1e-2)
        # The two rotary thetas reach their layers: swapping them changes the logits.
        swapped = dict(cfg.raw, rope_parameters={
            "full_attention": {"rope_theta": cfg.theta["sliding_attention"], "rope_type": "default"},
            "sliding_attention": {"rope_theta": cfg.theta["full_attention"], "rope_type": "default"}})
        change = (logits_of(Cfg(swapped), w, task, ids, mask) - base).abs().max().item()
        v.claim(f"{key}: the thetas matter: max |change| with them swapped {change:.3g}"
                f" (thetas read: {cfg.theta}, layer types {cfg.layer_types}, local layers "
                f"{[i for i in range(cfg.layers) if cfg.is_local(i)]})", change > 1e-2)
        # (b) padding invariance, and (c) the naive float64 forward, per sequence.
        worst_pad, worst_naive = per_sequence(
            task, mask, base, lambda r, n: logits_of(cfg, w, task, ids[r:r + 1, :n], mask[r:r + 1, :n])[0],
            lambda r, n: naive_logits(cfg, w, task, ids[r, :n].tolist()))
        v.report(f"{key}: (b) each text alone vs padded in the batch", worst_pad, 1e-5)
        v.report(f"{key}: (c) float64 per-token naive forward vs batched float32", worst_naive, 1e-4)
    v.done()


if __name__ == "__main__":
    main(__doc__, check, sanity, make_all, "--npm-tokenizers", 1)
