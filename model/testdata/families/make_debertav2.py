"""DeBERTa-v2/v3 fixtures for TestFamiliesMatchTransformersFixtures, made without transformers.

What this is: an independent PyTorch implementation of the *eager* forward of
transformers' DeBERTa-v2 (model_type "deberta-v2", the architecture of
microsoft/deberta-v3-*: DebertaV2Model and the DebertaV2ForSequenceClassification,
DebertaV2ForTokenClassification and DebertaV2ForQuestionAnswering heads, and the
DebertaV2ForMaskedLM head, which reference.py runs too), written from
a reading of src/transformers/models/deberta_v2/modeling_deberta_v2.py at transformers
commit 967ed0db036766dc1e9a964eca66a8c07df1b902 (also read: the older 0038a3caa5c7d0c5
014704005dd67ab347451ddc, which differs only in dividing q.k by the scale after the
matmul rather than dividing k before it, and in a byte rather than bool mask) and
configuration_deberta_v2.py at commit cb6679c8fe2783c91681ebf08ef15db969f5d645, plus the
writer that makes the fixtures
model/testdata/families/fixtures/deberta-v2-{classify,multilabel,ner,qa,mlm}/ in the layout
make_fixtures.py gives the other families: config.json (as DebertaV2Config would save
it), model.safetensors (tensor names as the task class's state_dict), the tokenizer files
DebertaV2Tokenizer saves (spm.model, tokenizer_config.json, special_tokens_map.json,
added_tokens.json) and expected.json.

Why not transformers: it could not be installed where these fixtures were made (no
PyPI; its source snapshot too large to fetch). So the logits in expected.json come from
this file, not from transformers: a second reading of transformers' code, checked by the
--sanity checks below (a float64 per-element re-implementation of the disentangled
attention for one unpadded sequence, padding invariance, the relative position matrix
without buckets equal to i - j, the float32 log buckets against float64 arithmetic), not
by transformers itself. Treat a disagreement between bertnode and these fixtures as a
question to settle against transformers' source, not as proof either way.

Not implemented (raises): the ConvLayer after the first layer (conv_kernel_size > 0;
only microsoft/deberta-v2-xlarge and -xxlarge have it), pos_att_type entries other than
c2p and p2c, activations other than gelu, gelu_new, relu and tanh. Implemented but used
by no fixture: embedding_size != hidden_size (embed_proj, bias-free), relative_attention
false (no relative term, no rel_embeddings), norm_rel_ebd without "layer_norm". Not
modelled: z_steps (always 0 in DebertaV2Model), query_states, the masked-LM head with
legacy false (Microsoft's lm_predictions.lm_head names).

transformers since 4.31 registers embeddings.position_ids as a non-persistent buffer, so
save_pretrained does not write it; the commits read here register it persistently (an
int64 "deberta.embeddings.position_ids" in older checkpoints, e.g. the hub's
deberta-v3-base pytorch_model.bin). The fixtures leave it out, as current transformers
saves.

The committed fixtures were made with Debian's torch 1.13.0a0 and python3-sentencepiece
0.1.97 (/usr/bin/python3) and Debian's spm_train 0.1.97, which trains the tokenizer: a
SentencePiece Unigram model on make_fixtures.py's corpus (fixturelib.py's corpus() and
spm_train options: vocab 300, identity normalization as for ALBERT's fixtures, [PAD] 0,
[CLS] 1 (bos), [SEP] 2 (eos), [UNK] 3, as deberta-v3's spm.model), with [MASK] added
after it (id = the model's size, as DebertaV2Tokenizer adds it). The texts
(make_fixtures.py's, from fixturelib.py) are encoded with the sentencepiece module as
DebertaV2Tokenizer does (pieces not in the vocabulary -> [UNK]; [CLS] A [SEP], pairs
[CLS] A [SEP] B [SEP] with token types 0 then 1; truncated to 64, longest first; padded
with [PAD] id 0 to the longest in the batch). A text with [MASK] (the masked-LM
fixture's: fixturelib.py's masked_texts) is split there first, as transformers splits its
added tokens out before the model sees the text, and each stretch between is encoded
alone: the slow tokenizer's sentencepiece drops the spaces at a stretch's ends
(remove_extra_whitespaces) and the converted one's Strip normalizer does too, each
stretch starting with its own "▁". The same ids come from tokenizers' npm binding
(0.23.2) over a tokenizer.json as DebertaV2Converter builds it (Strip, Replace " {2,}",
Metaspace with prepend_scheme "always", Unigram over the spm.model's pieces and scores,
[MASK] an added token), checked when the fixture was made, not by --sanity.

deberta-v2-mlm is DebertaV2ForMaskedLM with transformers' default (legacy) head, BERT's
cls.predictions (transform.dense, hidden_act, transform.LayerNorm; the decoder the word
embeddings; cls.predictions.bias), the classify fixture's options; its expected.json
keeps the logits at each [MASK] and the texts' ends, labels and their loss, as the other
masked-LM fixtures.

Weights are random (fixturelib.py's random_weights: torch.Generator seeded 0, normal std
0.2 in registration order; LayerNorm weights 1 + that, as make_fixtures.py's
scale_weights), hidden size 32, 4 heads, intermediate 37, 2 layers (3 for qa). Each
fixture exercises other options (see FIXTURES and the docstring of config_dict).

Rerun from the repository root (rewrites the five fixture directories; OpenBLAS's
Haswell kernel on one thread rewrote the four older ones byte for byte on an AMD EPYC,
where its own kernel moves their logits by about 1e-6, within --sanity's bound):

    apt-get install -y sentencepiece python3-sentencepiece
    OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
        /usr/bin/python3 model/testdata/families/make_debertav2.py --make

    /usr/bin/python3 model/testdata/families/make_debertav2.py --sanity

runs the sanity checks on the committed fixtures, and

    /usr/bin/python3 model/testdata/families/make_debertav2.py --check DIR...

loads checkpoint directories (config.json + model.safetensors + expected.json, e.g. the
ones bertnode saves when BERTNODE_KEEP_OURS names a folder) with this implementation and
compares their logits with expected.json's, exiting non-zero above 1e-4.
"""
import math
import os
import shutil
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # importing fixturelib would leave a __pycache__ in the repository
# fixturelib.py, beside this file: the texts, tasks, weights, safetensors and checks
# the fixture scripts share.
from fixturelib import (  # noqa: E402
    FMIN, OUT, QA_PAIRS, Float64, Sanity, check_reference, expected_of, fresh_dir, layer_norm, linear,
    load_dir, main, masked_texts, mlm_loss, mlm_targets, random_weights, sms_texts, spm_train, stored,
    task_config, write_checkpoint, write_corpus, write_json)
import fixturelib  # noqa: E402

MODELING_COMMIT = "967ed0db036766dc1e9a964eca66a8c07df1b902"
CONFIG_COMMIT = "cb6679c8fe2783c91681ebf08ef15db969f5d645"
REFERENCE = f"reference implementation of transformers@{MODELING_COMMIT} (make_debertav2.py)"
SPM_TOKENIZER = "DebertaV2Tokenizer (sentencepiece 0.1.97, spm_train)"

# Per-fixture options, chosen so each option is exercised at least once. Bucketed
# fixtures keep every distance in their texts (up to 63) below max_relative_positions - 1
# and off exact bucket boundaries (see the bucket check in --sanity): at a boundary the
# float32 ceil in make_log_bucket_position can go either way by an ulp of log (at
# |i - j| = max_relative_positions - 1 the ceil's argument is exactly mid - 1 in exact
# arithmetic: log(x) / log(x) with the two logs computed by different kernels, the
# vectorized one over the [L, L] tensor and the scalar one on the 0-dim tensor). So
# bucketed distances are never clamped here; clamping is exercised without buckets.
FIXTURES = {
    # log buckets 8 (mid 4, rel_embeddings of 16 rows; distances 5..63 share buckets
    # 5, 6, 7); c2p and p2c through the shared query/key projections.
    "classify": dict(num_hidden_layers=2, position_buckets=8, max_relative_positions=77,
                     pos_att_type=["p2c", "c2p"], share_att_key=True, type_vocab_size=0, position_biased_input=False),
    # no buckets: relative positions i - j, index i - j + 24 clamped to [0, 47]
    # (rel_embeddings of 48 rows; the texts reach |i - j| = 63); separate pos_key_proj
    # and pos_query_proj.
    "multilabel": dict(num_hidden_layers=2, position_buckets=-1, max_relative_positions=24,
                       pos_att_type=["p2c", "c2p"], share_att_key=False, type_vocab_size=0, position_biased_input=False),
    # c2p only (scale sqrt(2 d)); buckets 6 (mid 3: log buckets from distance 4 on).
    "ner": dict(num_hidden_layers=2, position_buckets=6, max_relative_positions=71,
                pos_att_type=["c2p"], share_att_key=True, type_vocab_size=0, position_biased_input=False),
    # DeBERTa-v2 "v1 style": absolute position embeddings and token types (2) added to
    # the word embeddings; max_relative_positions -1, i.e. max_position_embeddings (64);
    # buckets 8; the pairs are at most 57 tokens, below the boundary at 63.
    "qa": dict(num_hidden_layers=3, position_buckets=8, max_relative_positions=-1,
               pos_att_type=["p2c", "c2p"], share_att_key=True, type_vocab_size=2, position_biased_input=True),
}

VOCAB = 300
MAX_LEN = 64


# ---------------------------------------------------------------------------------
# Configuration: the values the model reads, with the defaults the modeling code
# (getattr(config, ..., default)) and DebertaV2Config give when config.json lacks them.

class Cfg:
    def __init__(self, d):
        self.raw = d
        g = d.get
        self.hidden = g("hidden_size", 1536)
        self.heads = g("num_attention_heads", 24)
        self.layers = g("num_hidden_layers", 24)
        self.inter = g("intermediate_size", 6144)
        self.hidden_act = g("hidden_act", "gelu")
        self.eps = g("layer_norm_eps", 1e-7)
        self.max_pos = g("max_position_embeddings", 512)
        self.type_vocab = g("type_vocab_size", 0)
        self.relative_attention = g("relative_attention", False)
        self.position_biased_input = g("position_biased_input", True)
        self.embedding_size = g("embedding_size", self.hidden)
        pat = g("pos_att_type")
        if isinstance(pat, str):
            pat = [x.strip() for x in pat.lower().split("|")]
        self.pos_att_type = list(pat or [])
        for t in self.pos_att_type:
            if t not in ("c2p", "p2c"):
                raise ValueError(f"pos_att_type {t} is not implemented here")
        self.share_att_key = g("share_att_key", False)
        self.position_buckets = g("position_buckets", -1)
        mrp = g("max_relative_positions", -1)
        self.max_relative_positions = mrp if mrp >= 1 else self.max_pos
        # The attention's span (pos_ebd_size); the encoder's table has twice as many rows.
        self.span = self.position_buckets if self.position_buckets > 0 else self.max_relative_positions
        self.norm_rel_ebd = [x.strip() for x in g("norm_rel_ebd", "none").lower().split("|")]
        if g("conv_kernel_size", 0) > 0:
            raise ValueError("conv_kernel_size > 0 (ConvLayer) is not implemented here")
        self.head_dim = g("attention_head_size", self.hidden // self.heads)
        self.pooler_hidden = g("pooler_hidden_size", self.hidden)
        self.pooler_act = g("pooler_hidden_act", "gelu")
        self.num_labels = len(g("id2label") or {}) or 2
        self.pad = g("pad_token_id", 0)


def activation(name):
    return fixturelib.activation(name, ("gelu", "gelu_new", "relu", "tanh"))


# ---------------------------------------------------------------------------------
# Parameters: names, shapes, random values.

def param_shapes(cfg, task):
    """(name, shape) in the order the task class registers its parameters."""
    H, E, A = cfg.hidden, cfg.embedding_size, cfg.heads * cfg.head_dim
    out = []

    def linear(prefix, n_out, n_in, bias=True):
        out.append((prefix + ".weight", (n_out, n_in)))
        if bias:
            out.append((prefix + ".bias", (n_out,)))

    def norm(prefix):
        out.append((prefix + ".weight", (H,)))
        out.append((prefix + ".bias", (H,)))

    out.append(("deberta.embeddings.word_embeddings.weight", (cfg.raw["vocab_size"], E)))
    if cfg.position_biased_input:
        out.append(("deberta.embeddings.position_embeddings.weight", (cfg.max_pos, E)))
    if cfg.type_vocab > 0:
        out.append(("deberta.embeddings.token_type_embeddings.weight", (cfg.type_vocab, E)))
    if E != H:
        linear("deberta.embeddings.embed_proj", H, E, bias=False)
    norm("deberta.embeddings.LayerNorm")
    for i in range(cfg.layers):
        p = f"deberta.encoder.layer.{i}."
        linear(p + "attention.self.query_proj", A, H)
        linear(p + "attention.self.key_proj", A, H)
        linear(p + "attention.self.value_proj", A, H)
        if cfg.relative_attention and not cfg.share_att_key:
            if "c2p" in cfg.pos_att_type:
                linear(p + "attention.self.pos_key_proj", A, H)
            if "p2c" in cfg.pos_att_type:
                linear(p + "attention.self.pos_query_proj", A, H)
        linear(p + "attention.output.dense", H, H)
        norm(p + "attention.output.LayerNorm")
        linear(p + "intermediate.dense", cfg.inter, H)
        linear(p + "output.dense", H, cfg.inter)
        norm(p + "output.LayerNorm")
    if cfg.relative_attention:
        out.append(("deberta.encoder.rel_embeddings.weight", (2 * cfg.span, H)))
    if "layer_norm" in cfg.norm_rel_ebd:
        norm("deberta.encoder.LayerNorm")
    if task in ("classify", "multilabel"):
        linear("pooler.dense", cfg.pooler_hidden, cfg.pooler_hidden)
        linear("classifier", cfg.num_labels, H)  # pooler.output_dim is hidden_size
    elif task == "ner":
        linear("classifier", cfg.num_labels, H)
    elif task == "mlm":  # the decoder's weight is the word embeddings
        linear("cls.predictions.transform.dense", E, H)
        out.extend([("cls.predictions.transform.LayerNorm.weight", (E,)), ("cls.predictions.transform.LayerNorm.bias", (E,))])
        out.append(("cls.predictions.bias", (cfg.raw["vocab_size"],)))
    else:
        linear("qa_outputs", 2, H)
    return out


def is_norm(name):
    return "LayerNorm" in name


# ---------------------------------------------------------------------------------
# Relative positions.

def log_bucket(rel, bucket_size, max_position):
    """make_log_bucket_position: rel (int64) -> float32 buckets. Distances inside
    (-mid, mid) stay as they are; others become sign * (mid + ceil(log(|r| / mid) /
    log((max_position - 1) / mid) * (mid - 1))), every step in float32 (the int64
    tensor divided by the int mid is a float32 tensor; the Python float
    (max_position - 1) / mid becomes a float32 scalar tensor)."""
    sign = torch.sign(rel)
    mid = bucket_size // 2
    inside = (rel < mid) & (rel > -mid)
    abs_pos = torch.where(inside, torch.tensor(mid - 1).type_as(rel), rel.abs())
    denom = torch.log(torch.tensor((max_position - 1) / mid))  # float32
    log_pos = torch.ceil(torch.log(abs_pos / mid) / denom * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, rel.type_as(log_pos), log_pos * sign)


def relative_positions(q_len, k_len, bucket_size=-1, max_position=-1):
    """build_relative_position: [1, q_len, k_len] int64, query index minus key index,
    log-bucketed when both bucket_size and max_position are positive."""
    rel = torch.arange(q_len)[:, None] - torch.arange(k_len)[None, :]
    if bucket_size > 0 and max_position > 0:
        rel = log_bucket(rel, bucket_size, max_position)
    return rel.to(torch.long)[:q_len, :].unsqueeze(0)


# ---------------------------------------------------------------------------------
# The forward, batched, float32, in the order of transformers' operations.

def split_heads(cfg, x):
    """[B, L, heads * d] -> [B * heads, L, d] (transpose_for_scores)."""
    B, L = x.shape[0], x.shape[1]
    return x.view(B, L, cfg.heads, -1).permute(0, 2, 1, 3).contiguous().view(-1, L, x.shape[-1] // cfg.heads)


def embed(cfg, w, input_ids, token_type_ids, attention_mask):
    L = input_ids.shape[1]
    x = F.embedding(input_ids, w["deberta.embeddings.word_embeddings.weight"])
    if cfg.position_biased_input:
        x = x + F.embedding(torch.arange(L)[None, :], w["deberta.embeddings.position_embeddings.weight"])
    if cfg.type_vocab > 0:
        x = x + F.embedding(token_type_ids, w["deberta.embeddings.token_type_embeddings.weight"])
    if cfg.embedding_size != cfg.hidden:
        x = linear(w, "deberta.embeddings.embed_proj", x)
    x = layer_norm(w, "deberta.embeddings.LayerNorm", x, cfg.eps)
    # The embeddings of padding positions are zeroed after the LayerNorm.
    return x * attention_mask.unsqueeze(2).to(x.dtype)


def disentangled_bias(cfg, w, p, q, k, rel_pos, rel_emb, scale_factor):
    """c2p and p2c terms, [B * heads, L, L], each already divided by the scale."""
    span = cfg.span
    BH = q.shape[0]
    rel_pos = rel_pos.unsqueeze(1)  # [1, 1, L, L]
    emb = rel_emb[0:2 * span, :].unsqueeze(0)  # [1, 2 span, H]
    reps = BH // cfg.heads
    if cfg.share_att_key:
        pos_q = split_heads(cfg, linear(w, p + "query_proj", emb)).repeat(reps, 1, 1)
        pos_k = split_heads(cfg, linear(w, p + "key_proj", emb)).repeat(reps, 1, 1)
    else:
        if "c2p" in cfg.pos_att_type:
            pos_k = split_heads(cfg, linear(w, p + "pos_key_proj", emb)).repeat(reps, 1, 1)
        if "p2c" in cfg.pos_att_type:
            pos_q = split_heads(cfg, linear(w, p + "pos_query_proj", emb)).repeat(reps, 1, 1)
    score = 0
    if "c2p" in cfg.pos_att_type:
        scale = torch.sqrt(torch.tensor(pos_k.shape[-1], dtype=torch.float) * scale_factor)
        c2p = torch.bmm(q, pos_k.transpose(-1, -2))  # [BH, Lq, 2 span]
        idx = torch.clamp(rel_pos + span, 0, 2 * span - 1)
        c2p = torch.gather(c2p, -1, idx.squeeze(0).expand(BH, q.shape[1], rel_pos.shape[-1]))
        score = score + c2p / scale
    if "p2c" in cfg.pos_att_type:
        scale = torch.sqrt(torch.tensor(pos_q.shape[-1], dtype=torch.float) * scale_factor)
        idx = torch.clamp(-rel_pos + span, 0, 2 * span - 1)
        p2c = torch.bmm(k, pos_q.transpose(-1, -2))  # [BH, Lk, 2 span]
        p2c = torch.gather(p2c, -1, idx.squeeze(0).expand(BH, k.shape[1], k.shape[1])).transpose(-1, -2)
        score = score + p2c / scale
    return score


def masked_softmax(scores, mask):
    """XSoftmax: masked entries set to float32's min, softmax, masked entries then 0
    (so a padding query's row, every entry masked, is all zeros)."""
    rmask = ~mask.to(torch.bool)
    out = scores.masked_fill(rmask, FMIN)
    out = torch.softmax(out, -1)
    return out.masked_fill(rmask, 0)


def encoder(cfg, w, input_ids, token_type_ids, attention_mask):
    B, L = input_ids.shape
    act = activation(cfg.hidden_act)
    h = embed(cfg, w, input_ids, token_type_ids, attention_mask)
    m = attention_mask.unsqueeze(1).unsqueeze(2)  # [B, 1, 1, L]
    mask4 = m * m.squeeze(-2).unsqueeze(-1)  # [B, 1, L, L]: query and key both real
    rel_pos = relative_positions(L, L, cfg.position_buckets, cfg.max_relative_positions) if cfg.relative_attention else None
    rel_emb = None
    if cfg.relative_attention:
        rel_emb = w["deberta.encoder.rel_embeddings.weight"]
        if "layer_norm" in cfg.norm_rel_ebd:
            rel_emb = layer_norm(w, "deberta.encoder.LayerNorm", rel_emb, cfg.eps)
    scale_factor = 1 + ("c2p" in cfg.pos_att_type) + ("p2c" in cfg.pos_att_type)
    for i in range(cfg.layers):
        p = f"deberta.encoder.layer.{i}.attention.self."
        q = split_heads(cfg, linear(w, p + "query_proj", h))
        k = split_heads(cfg, linear(w, p + "key_proj", h))
        v = split_heads(cfg, linear(w, p + "value_proj", h))
        scale = torch.sqrt(torch.tensor(q.shape[-1], dtype=torch.float) * scale_factor)
        scores = torch.bmm(q, k.transpose(-1, -2) / scale.to(dtype=q.dtype))
        if cfg.relative_attention:
            rel = disentangled_bias(cfg, w, p, q, k, rel_pos, rel_emb, scale_factor)
            scores = scores + rel
        scores = scores.view(-1, cfg.heads, L, L)
        probs = masked_softmax(scores, mask4)
        ctx = torch.bmm(probs.view(-1, L, L), v)
        ctx = ctx.view(-1, cfg.heads, L, ctx.shape[-1]).permute(0, 2, 1, 3).contiguous().view(B, L, -1)
        p = f"deberta.encoder.layer.{i}."
        a = layer_norm(w, p + "attention.output.LayerNorm", linear(w, p + "attention.output.dense", ctx) + h, cfg.eps)
        y = act(linear(w, p + "intermediate.dense", a))
        h = layer_norm(w, p + "output.LayerNorm", linear(w, p + "output.dense", y) + a, cfg.eps)
    return h


def logits_of(cfg, w, task, input_ids, attention_mask, token_type_ids):
    """[B, N] for classify and multilabel, [B, L, N] for ner, [B, L, 2] (start, end) for
    qa, [B, L, V] for mlm."""
    with torch.no_grad():
        h = encoder(cfg, w, input_ids, token_type_ids, attention_mask)
        if task == "mlm":  # DebertaV2ForMaskedLM's cls: DebertaV2PredictionHeadTransform, tied decoder, bias
            x = activation(cfg.hidden_act)(linear(w, "cls.predictions.transform.dense", h))
            x = layer_norm(w, "cls.predictions.transform.LayerNorm", x, cfg.eps)
            return F.linear(x, w["deberta.embeddings.word_embeddings.weight"], w["cls.predictions.bias"])
        if task in ("classify", "multilabel"):
            pooled = activation(cfg.pooler_act)(linear(w, "pooler.dense", h[:, 0]))
            return linear(w, "classifier", pooled)
        if task == "ner":
            return linear(w, "classifier", h)
        return linear(w, "qa_outputs", h)  # [..., 0] start, [..., 1] end


# ---------------------------------------------------------------------------------
# A second, deliberately naive forward for the sanity checks: float64, one unpadded
# sequence, one head, query and key at a time, the relative distance and its bucket
# computed per pair in Python floats, and the two relative terms written from their
# definitions: c2p(a, b) = q_a . Kr[d(a - b)], p2c(a, b) = k_b . Qr[d'] with d' the
# index the p2c gather takes for key b and query a: span - bucket(b - a).

def naive_bucket(r, bucket_size, max_position):
    if bucket_size <= 0 or max_position <= 0:
        return r
    mid = bucket_size // 2
    if abs(r) <= mid:
        return r
    x = math.log(abs(r) / mid) / math.log((max_position - 1) / mid) * (mid - 1)
    return int(math.copysign(math.ceil(x) + mid, r))


def naive_logits(cfg, w, task, ids, types):
    f64 = Float64(w, cfg.eps)
    w, ln, lin, gelu = f64.w, f64.ln, f64.lin, f64.gelu
    L, H, nh, D = len(ids), cfg.hidden, cfg.heads, cfg.head_dim
    span = cfg.span

    def clamp(i):
        return min(max(i, 0), 2 * span - 1)

    x = w["deberta.embeddings.word_embeddings.weight"][torch.tensor(ids)]
    if cfg.position_biased_input:
        x = x + w["deberta.embeddings.position_embeddings.weight"][:L]
    if cfg.type_vocab > 0:
        x = x + w["deberta.embeddings.token_type_embeddings.weight"][torch.tensor(types)]
    if cfg.embedding_size != cfg.hidden:
        x = lin("deberta.embeddings.embed_proj", x)
    h = ln("deberta.embeddings.LayerNorm", x)
    rel = ln("deberta.encoder.LayerNorm", w["deberta.encoder.rel_embeddings.weight"]) \
        if "layer_norm" in cfg.norm_rel_ebd else w["deberta.encoder.rel_embeddings.weight"]
    c2p, p2c = "c2p" in cfg.pos_att_type, "p2c" in cfg.pos_att_type
    s = math.sqrt(D * (1 + c2p + p2c))
    bucket = {r: naive_bucket(r, cfg.position_buckets, cfg.max_relative_positions) for r in range(-L, L + 1)}
    for i in range(cfg.layers):
        p = f"deberta.encoder.layer.{i}.attention.self."
        pk_name = p + ("key_proj" if cfg.share_att_key else "pos_key_proj")
        pq_name = p + ("query_proj" if cfg.share_att_key else "pos_query_proj")
        ctx = torch.zeros(L, nh * D, dtype=torch.float64)
        for hd in range(nh):
            cols = slice(hd * D, (hd + 1) * D)
            q = lin(p + "query_proj", h)[:, cols]
            k = lin(p + "key_proj", h)[:, cols]
            v = lin(p + "value_proj", h)[:, cols]
            Kr = lin(pk_name, rel)[:, cols] if c2p else None
            Qr = lin(pq_name, rel)[:, cols] if p2c else None
            for a in range(L):
                scores = []
                for b in range(L):
                    sc = float(q[a] @ k[b]) / s
                    if c2p:
                        sc += float(q[a] @ Kr[clamp(bucket[a - b] + span)]) / s
                    if p2c:
                        sc += float(k[b] @ Qr[clamp(span - bucket[b - a])]) / s
                    scores.append(sc)
                pr = torch.softmax(torch.tensor(scores, dtype=torch.float64), 0)
                ctx[a, cols] = sum(pr[b] * v[b] for b in range(L))
        p = f"deberta.encoder.layer.{i}."
        a_ = ln(p + "attention.output.LayerNorm", lin(p + "attention.output.dense", ctx) + h)
        h = ln(p + "output.LayerNorm", lin(p + "output.dense", gelu(lin(p + "intermediate.dense", a_))) + a_)
    if task in ("classify", "multilabel"):
        return lin("classifier", gelu(lin("pooler.dense", h[0])))
    if task == "mlm":
        t = ln("cls.predictions.transform.LayerNorm", gelu(lin("cls.predictions.transform.dense", h)))
        return t @ w["deberta.embeddings.word_embeddings.weight"].T + w["cls.predictions.bias"]
    return lin("classifier" if task == "ner" else "qa_outputs", h)


# ---------------------------------------------------------------------------------
# Tokenizer: spm_train, encoded with the sentencepiece module as DebertaV2Tokenizer does.

def train_spm(tmp):
    write_corpus(os.path.join(tmp, "corpus.txt"))
    # Run in tmp with relative paths: the model records its trainer's input and prefix.
    spm_train("corpus.txt", "spm", ["--pad_id=0", "--pad_piece=[PAD]", "--bos_id=1", "--bos_piece=[CLS]",
                                    "--eos_id=2", "--eos_piece=[SEP]", "--unk_id=3", "--unk_piece=[UNK]"],
              vocab_size=VOCAB, cwd=tmp)
    return os.path.join(tmp, "spm.model")


class SpmTok:
    """What DebertaV2Tokenizer does with these texts: sentencepiece pieces, a piece not
    in the vocabulary -> [UNK], [CLS] A [SEP] (B [SEP]); [MASK] added after the model."""

    def __init__(self, path):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=path)
        self.size = self.sp.get_piece_size()
        self.vocab = {self.sp.id_to_piece(i): i for i in range(self.size)}
        self.ids = {s: self.vocab[s] for s in ("[PAD]", "[CLS]", "[SEP]", "[UNK]")}
        self.ids["[MASK]"] = self.size
        self.vocab_size = self.size + 1

    def pieces(self, text):
        """The ids of each stretch of text between [MASK]s, [MASK]'s id between them."""
        out = []
        for i, part in enumerate(text.split("[MASK]")):
            if i:
                out.append(self.ids["[MASK]"])
            out += [self.vocab.get(p, self.ids["[UNK]"]) for p in self.sp.encode(part, out_type=str)]
        return out

    def encode(self, a, b=None, max_len=MAX_LEN):
        x, y = self.pieces(a), self.pieces(b) if b is not None else None
        budget = max_len - (2 if y is None else 3)
        if y is None:
            x = x[:budget]
        else:  # longest_first
            while len(x) + len(y) > budget:
                if len(x) > len(y):
                    x = x[:-1]
                else:
                    y = y[:-1]
        cls, sep = self.ids["[CLS]"], self.ids["[SEP]"]
        ids = [cls] + x + [sep]
        types = [0] * len(ids)
        if y is not None:
            ids += y + [sep]
            types += [1] * (len(y) + 1)
        return ids, types

    def batch(self, texts):
        rows = [self.encode(*t) if isinstance(t, (list, tuple)) else self.encode(t) for t in texts]
        n = max(len(r[0]) for r in rows)
        pad = self.ids["[PAD]"]
        ids = [r[0] + [pad] * (n - len(r[0])) for r in rows]
        types = [r[1] + [0] * (n - len(r[1])) for r in rows]
        mask = [[1] * len(r[0]) + [0] * (n - len(r[0])) for r in rows]
        return torch.tensor(ids), torch.tensor(mask), torch.tensor(types)


def special_entry(content, special=True):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": special}


def tokenizer_files(tok):
    """tokenizer_config.json, special_tokens_map.json and added_tokens.json as
    transformers saves them for a DebertaV2Tokenizer over this spm.model."""
    decoder = {str(tok.ids[s]): special_entry(s) for s in ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")}
    config = {
        "added_tokens_decoder": dict(sorted(decoder.items(), key=lambda kv: int(kv[0]))),
        "bos_token": "[CLS]",
        "clean_up_tokenization_spaces": False,
        "cls_token": "[CLS]",
        "do_lower_case": False,
        "eos_token": "[SEP]",
        "extra_special_tokens": {},
        "mask_token": "[MASK]",
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": "[PAD]",
        "sep_token": "[SEP]",
        "sp_model_kwargs": {},
        "split_by_punct": False,
        "tokenizer_class": "DebertaV2Tokenizer",
        "unk_token": "[UNK]",
        "vocab_type": "spm",
    }
    smap = {"bos_token": "[CLS]", "cls_token": "[CLS]", "eos_token": "[SEP]", "mask_token": "[MASK]",
            "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"}
    return config, smap, {"[MASK]": tok.ids["[MASK]"]}


# ---------------------------------------------------------------------------------
# Fixtures.

def config_dict(task, opts, vocab_size):
    """config.json as DebertaV2Config(...).save_pretrained writes it: every
    DebertaV2Config attribute, and the extra keys the model reads through getattr
    (position_buckets, norm_rel_ebd, share_att_key) as given."""
    d = {
        "attention_probs_dropout_prob": 0.1,
        "dtype": "float32",
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 37,
        "layer_norm_eps": 1e-07,
        "max_position_embeddings": 64,
        "max_relative_positions": opts["max_relative_positions"],
        "model_type": "deberta-v2",
        "norm_rel_ebd": "layer_norm",
        "num_attention_heads": 4,
        "num_hidden_layers": opts["num_hidden_layers"],
        "pad_token_id": 0,
        "pooler_dropout": 0,
        "pooler_hidden_act": "gelu",
        "pooler_hidden_size": 32,
        "pos_att_type": opts["pos_att_type"],
        "position_biased_input": opts["position_biased_input"],
        "position_buckets": opts["position_buckets"],
        "relative_attention": True,
        "share_att_key": opts["share_att_key"],
        "transformers_version": "5.0.0.dev0",
        "type_vocab_size": opts["type_vocab_size"],
        "vocab_size": vocab_size,
    }
    return task_config(task, "DebertaV2", d)


def make_all():
    tmp = tempfile.mkdtemp(prefix="deberta-spm-")
    try:
        model = train_spm(tmp)
        tok = SpmTok(model)
        tok_config, smap, added = tokenizer_files(tok)
        for task, opts in FIXTURES.items():
            name = f"deberta-v2-{task}"
            d = fresh_dir(name)
            shutil.copy(model, os.path.join(d, "spm.model"))
            write_json(os.path.join(d, "tokenizer_config.json"), tok_config)
            write_json(os.path.join(d, "special_tokens_map.json"), smap)
            write_json(os.path.join(d, "added_tokens.json"), added)
            cfgd = config_dict(task, opts, tok.vocab_size)
            cfg = Cfg(cfgd)
            w = random_weights(param_shapes(cfg, task), is_norm)
            texts = [list(p) for p in QA_PAIRS] if task == "qa" else sms_texts()
            ids, mask, types = tok.batch(texts)
            logits = logits_of(cfg, w, task, ids, mask, types)
            write_checkpoint(d, cfgd, w, expected_of(task, REFERENCE, SPM_TOKENIZER, texts, ids, mask, types, logits))
            print(f"{name}: logits {list(logits.shape)}, |max| {logits.abs().max():.3f}, lengths {mask.sum(1).tolist()}")
        make_mlm(model, tok, tok_config, smap, added)
    finally:
        shutil.rmtree(tmp)


# The masked-LM fixture's options: the classify fixture's.
MLM = FIXTURES["classify"]


def make_mlm(model, tok, tok_config, smap, added):
    d = fresh_dir("deberta-v2-mlm")
    shutil.copy(model, os.path.join(d, "spm.model"))
    write_json(os.path.join(d, "tokenizer_config.json"), tok_config)
    write_json(os.path.join(d, "special_tokens_map.json"), smap)
    write_json(os.path.join(d, "added_tokens.json"), added)
    cfgd = config_dict("classify", MLM, tok.vocab_size)
    for k in ("id2label", "label2id"):
        del cfgd[k]
    cfgd["architectures"] = ["DebertaV2ForMaskedLM"]
    cfg = Cfg(cfgd)
    w = random_weights(param_shapes(cfg, "mlm"), is_norm)
    texts = masked_texts()
    ids, mask, types = tok.batch(texts)
    logits = logits_of(cfg, w, "mlm", ids, mask, types)
    extra = mlm_targets(ids, mask, tok.ids["[MASK]"], tok.vocab_size)
    extra["loss"] = round(mlm_loss(logits, torch.tensor(extra["labels"])).item(), 7)
    exp = expected_of("mlm", REFERENCE, SPM_TOKENIZER, texts, ids, mask, types, stored("mlm", logits, extra))
    write_checkpoint(d, cfgd, w, dict(exp, **extra))
    print(f"deberta-v2-mlm: logits {list(logits.shape)}, |max| {logits.abs().max():.3f}, lengths {mask.sum(1).tolist()}")


def batch_of(exp):
    return torch.tensor(exp["input_ids"]), torch.tensor(exp["attention_mask"]), torch.tensor(exp["token_type_ids"])


def check(dirs):
    check_reference(dirs, Cfg, param_shapes, lambda cfg, w, exp: stored(exp["task"], logits_of(cfg, w, exp["task"], *batch_of(exp)), exp),
                    ignore=["deberta.embeddings.position_ids"])  # older transformers saved it


# ---------------------------------------------------------------------------------
# Sanity checks.

def bucket_margin(cfg, L):
    """For the distances a sequence of L tokens has: the float32 buckets against float64
    arithmetic, and how close the float64 argument of the ceil comes to an integer."""
    rel = torch.arange(-(L - 1), L)
    f32 = log_bucket(rel, cfg.position_buckets, cfg.max_relative_positions).to(torch.long).tolist()
    f64 = [naive_bucket(r, cfg.position_buckets, cfg.max_relative_positions) for r in rel.tolist()]
    mid = cfg.position_buckets // 2
    margin = min((abs(x - round(x)) for r in range(mid + 1, L)
                  for x in [math.log(r / mid) / math.log((cfg.max_relative_positions - 1) / mid) * (mid - 1)]),
                 default=1.0)
    return f32, f64, margin


def sanity():
    v = Sanity()
    claim, report = v.claim, v.report
    v.exact_gelu(activation("gelu"))
    # Without buckets and with a large max_relative_positions the relative positions are
    # query index minus key index.
    for L in (1, 7, 64):
        r = relative_positions(L, L, -1, 1000)[0]
        i = torch.arange(L)
        claim(f"no buckets, max_relative_positions 1000, L {L}: relative_pos[i, j] == i - j", torch.equal(r, i[:, None] - i[None, :]))
    # Buckets on a hand example: buckets 8 (mid 4), max_position 64: distance 5 ->
    # 4 + ceil(log(5/4)/log(63/4) * 3) = 4 + ceil(0.2428) = 5; 20 -> 4 + ceil(1.751) = 6;
    # 62 -> 4 + ceil(2.983) = 7; 100 -> 4 + ceil(3.50) = 8; distances up to 4 unchanged.
    got = relative_positions(1, 101, 8, 64)[0, 0, [0, 1, 4, 5, 20, 62, 100]].tolist()
    claim(f"buckets 8, max 64, query 0 vs keys 0 1 4 5 20 62 100: {got} == [0, -1, -4, -5, -6, -7, -8]",
          got == [0, -1, -4, -5, -6, -7, -8])
    # Buckets are odd in the distance, so p2c's index span - bucket(j - i) (key j, query
    # i, as its gather takes it) is c2p's span + bucket(i - j).
    r = torch.arange(-200, 201)
    claim("log buckets (8, 64) and (6, 71) are odd: bucket(-r) == -bucket(r) for |r| <= 200",
          all(torch.equal(log_bucket(-r, b, m), -log_bucket(r, b, m)) for b, m in ((8, 64), (6, 71))))
    # XSoftmax: a real query's padding keys get 0; a padding query's row is all 0.
    m = torch.tensor([1, 1, 0])
    probs = masked_softmax(torch.randn(1, 1, 3, 3), (m[None, None, None, :] * m[None, None, :, None]))[0, 0]
    claim(f"masked softmax with mask [1, 1, 0]: rows {[[round(x, 3) for x in row] for row in probs.tolist()]}",
          probs[:2, 2].abs().sum() == 0 and probs[2].abs().sum() == 0 and torch.allclose(probs[:2].sum(-1), torch.ones(2)))

    for task in [*FIXTURES, "mlm"]:
        d = os.path.join(OUT, f"deberta-v2-{task}")
        cfg, w, exp = load_dir(d, Cfg)
        ids, mask, types = batch_of(exp)
        L = ids.shape[1]
        if cfg.position_buckets > 0:
            f32, f64, margin = bucket_margin(cfg, L)
            claim(f"{task}: float32 buckets == float64 buckets for |i - j| < {L} "
                  f"(min distance of the ceil's argument to an integer {margin:.3g}); buckets for 0..{L - 1}: "
                  f"{sorted(set(b for b in f32 if b >= 0))}", f32 == f64 and margin > 1e-4)
        base = logits_of(cfg, w, task, ids, mask, types)
        v.expected(task, stored(task, base, exp), exp)
        if task == "mlm":
            report("mlm: loss vs expected.json", abs(mlm_loss(base, torch.tensor(exp["labels"])).item() - exp["loss"]), 1e-6)
            mask_id = cfg.raw["vocab_size"] - 1  # added after the spm.model's pieces
            claim(f"mlm: each text has one [MASK] (id {mask_id}) per masked word",
                  [r.count(mask_id) for r in ids.tolist()] == [len(m) for m in fixturelib.MASKED_WORDS])
        # Each option reaches the logits.
        for what, change in [("without p2c", dict(pos_att_type=["c2p"])), ("without c2p", dict(pos_att_type=["p2c"])),
                             ("without relative attention", dict(pos_att_type=[]))]:
            if set(change["pos_att_type"]) == set(cfg.pos_att_type):
                continue
            if not cfg.share_att_key and set(change["pos_att_type"]) - set(cfg.pos_att_type):
                continue
            alt = logits_of(Cfg(dict(cfg.raw, **change)), w, task, ids, mask, types)
            delta = (alt - base).abs().max().item()
            claim(f"{task}: {what} the logits change by {delta:.3g}", delta > 1e-2)
        v.per_sequence(
            task, mask, base, lambda r, n: logits_of(cfg, w, task, ids[r:r + 1, :n], mask[r:r + 1, :n], types[r:r + 1, :n])[0],
            lambda r, n: naive_logits(cfg, w, task, ids[r, :n].tolist(), types[r, :n].tolist()))
    v.done()


if __name__ == "__main__":
    main(__doc__, check, sanity, make_all, "--make")
