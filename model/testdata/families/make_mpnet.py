"""MPNet fixtures for TestFamiliesMatchTransformersFixtures, made without transformers,
and MPNet's forward for reference.py and make_embeddings.py.

What this is: an independent PyTorch implementation of the *eager* forward of
transformers' MPNet (model_type "mpnet": MPNetModel and the MPNetForSequenceClassification,
MPNetForTokenClassification, MPNetForQuestionAnswering, MPNetForMultipleChoice and
MPNetForMaskedLM heads), written from a reading of
src/transformers/models/mpnet/modeling_mpnet.py at transformers commit
00099b9f15ad8bea330364709453fc49cbba90e5, configuration_mpnet.py at commit
06053b84c14d72e9789fbf27844a75aa89b3ded7, tokenization_mpnet.py at commit
0089f7927fcbc3bbf9b86ed482fcb24582591fb3 and convert_slow_tokenizer.py's MPNetConverter,
plus the writer that makes the fixtures
model/testdata/families/fixtures/mpnet-{classify,multilabel,ner,qa}/ in the layout
make_fixtures.py gives the other families: config.json (as MPNetConfig would save it),
model.safetensors (tensor names as the task class's state_dict), the tokenizer files
MPNetTokenizerFast saves (vocab.txt, tokenizer.json, tokenizer_config.json,
special_tokens_map.json) and expected.json.

What MPNet computes, as read there:
- embeddings: word + position embeddings (no token types), LayerNorm, dropout. The
  padding index is fixed at 1 (MPNetEmbeddings.padding_idx), whatever pad_token_id
  says: position ids are create_position_ids_from_input_ids(input_ids, 1), i.e.
  cumsum(ids != 1) * (ids != 1) + 1, as RoBERTa's with pad 1.
- MPNetEncoder.compute_position_bias, once per forward: for query i and key j the
  bucket of relative_position = j - i (relative_position_bucket with its defaults, 32
  buckets and max_distance 128, which forward never overrides, whatever
  relative_attention_num_buckets says; that only sizes the table), looked up in
  encoder.relative_attention_bias [buckets, heads], [1, heads, L, L].
- each layer (BERT's post-LayerNorm computation under other names): q, k, v, scores
  q k^T / sqrt(d), += position_bias, + the extended mask (1 - mask) * finfo.min,
  softmax, context, attention.attn.o, attention.LayerNorm(o + x); intermediate.dense
  with hidden_act, output.dense, output.LayerNorm(+).
- heads: sequence classification as RoBERTa's (classifier.dense, tanh,
  classifier.out_proj on <s>, no pooler); token classification classifier;
  qa_outputs; multiple choice the pooler (dense, tanh) on <s>, then classifier, viewed
  [-1, num_choices]; masked LM lm_head.dense, gelu (exact, whatever hidden_act),
  lm_head.layer_norm, decoder tied to the word embeddings, + lm_head.bias.

Why not transformers: it could not be installed where these fixtures were made (no
PyPI). So the logits in expected.json come from this file, not from transformers: a
second reading of transformers' code, checked by the --sanity checks below (a float64
per-element re-implementation of one unpadded sequence with the buckets computed per
pair in Python floats, padding invariance, the buckets on hand examples), not by
transformers itself. Treat a disagreement between bertnode and these fixtures as a
question to settle against transformers' source, not as proof either way.

The tokenizer: a WordPiece vocabulary built here from make_fixtures.py's corpus
(fixturelib.py's corpus(): MPNet's specials <s> <pad> </s> <unk> [UNK] first, then the
characters seen at least twice, each also as a ##continuation, four suffixes and the
120 most frequent words, <mask> last; a word with a character seen once becomes [UNK]),
written as MPNetTokenizerFast saves it (tokenizer.json in MPNetConverter's layout:
BertNormalizer lowercase, BertPreTokenizer, TemplateProcessing "<s> $A </s>" / "<s> $A
</s> </s> $B:1 </s>:1"). The texts are encoded by this file's transcription of
BertTokenizer (clean text, CJK spacing, lowercase and accent stripping, punctuation
split, greedy longest-match WordPiece, max 100 characters a word) and
MPNetTokenizer.build_inputs_with_special_tokens (<s> A </s>, pairs <s> A </s></s> B
</s>; truncated to 64, longest first; padded with <pad> 1 to the longest in the batch).
MPNet's tokenizer returns no token types: token_type_ids in expected.json are zeros.

Weights are random (fixturelib.py's random_weights: torch.Generator seeded 0, normal std
0.2 in registration order; LayerNorm weights 1 + that), hidden size 32, 4 heads,
intermediate 37, 2 layers (3 for qa). Each fixture exercises other options (FIXTURES).

Rerun from the repository root (rewrites the four fixture directories; Debian's torch
1.13.0a0, /usr/bin/python3, made the committed ones):

    /usr/bin/python3 model/testdata/families/make_mpnet.py --make

    /usr/bin/python3 model/testdata/families/make_mpnet.py --sanity

runs the sanity checks on the committed fixtures, and

    /usr/bin/python3 model/testdata/families/make_mpnet.py --check DIR...

loads checkpoint directories (config.json + model.safetensors + expected.json, e.g. the
ones bertnode saves when BERTNODE_KEEP_OURS names a folder) with this implementation and
compares their logits with expected.json's, exiting non-zero above 1e-4.
"""
import collections
import math
import os
import sys
import unicodedata

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # importing fixturelib would leave a __pycache__ in the repository
from fixturelib import (  # noqa: E402
    FMIN, QA_PAIRS, Float64, Sanity, check_reference, corpus, expected_of, fresh_dir, layer_norm, linear,
    load_dir, main, random_weights, sms_texts, task_config, write_checkpoint, write_json)
import fixturelib  # noqa: E402

MODELING_COMMIT = "00099b9f15ad8bea330364709453fc49cbba90e5"
REFERENCE = f"reference implementation of transformers@{MODELING_COMMIT} (make_mpnet.py)"
TOKENIZER = "MPNetTokenizer transcription (make_mpnet.py)"

PAD = 1  # MPNetEmbeddings.padding_idx
NUM_BUCKETS, MAX_DISTANCE = 32, 128  # relative_position_bucket's defaults, which forward keeps
MAX_LEN = 64

# Per-fixture options, so that each is exercised at least once.
FIXTURES = {
    # mpnet-base's eps; gelu.
    "classify": dict(num_hidden_layers=2, hidden_act="gelu", layer_norm_eps=1e-5, relative_attention_num_buckets=32),
    # a table with more rows than the 32 buckets (the extra rows unused); MPNetConfig's eps.
    "multilabel": dict(num_hidden_layers=2, hidden_act="gelu", layer_norm_eps=1e-12, relative_attention_num_buckets=40),
    # gelu_new; pad_token_id 0 in config.json, which the model never reads.
    "ner": dict(num_hidden_layers=2, hidden_act="gelu_new", layer_norm_eps=1e-5, relative_attention_num_buckets=32, pad_token_id=0),
    # relu, 3 layers.
    "qa": dict(num_hidden_layers=3, hidden_act="relu", layer_norm_eps=1e-5, relative_attention_num_buckets=32),
}


class Cfg:
    """The values the model reads, with MPNetConfig's defaults."""

    def __init__(self, d):
        self.raw = d
        g = d.get
        self.vocab = g("vocab_size", 30527)
        self.hidden = g("hidden_size", 768)
        self.heads = g("num_attention_heads", 12)
        self.layers = g("num_hidden_layers", 12)
        self.inter = g("intermediate_size", 3072)
        self.act = fixturelib.activation(g("hidden_act", "gelu"), ("gelu", "gelu_new", "relu", "tanh"))
        self.eps = g("layer_norm_eps", 1e-12)
        self.max_pos = g("max_position_embeddings", 512)
        self.buckets = g("relative_attention_num_buckets", 32)
        self.num_labels = len(g("id2label") or {}) or 2


# ---------------------------------------------------------------------------------
# Parameters.

def param_shapes(cfg, task):
    """(name, shape) in the order the task class registers its parameters."""
    H = cfg.hidden
    out = []

    def lin(prefix, n_out, n_in):
        out.extend([(prefix + ".weight", (n_out, n_in)), (prefix + ".bias", (n_out,))])

    def norm(prefix):
        out.extend([(prefix + ".weight", (H,)), (prefix + ".bias", (H,))])

    out.append(("mpnet.embeddings.word_embeddings.weight", (cfg.vocab, H)))
    out.append(("mpnet.embeddings.position_embeddings.weight", (cfg.max_pos, H)))
    norm("mpnet.embeddings.LayerNorm")
    for i in range(cfg.layers):
        p = f"mpnet.encoder.layer.{i}."
        for n in ("q", "k", "v", "o"):
            lin(p + "attention.attn." + n, H, H)
        norm(p + "attention.LayerNorm")
        lin(p + "intermediate.dense", cfg.inter, H)
        lin(p + "output.dense", H, cfg.inter)
        norm(p + "output.LayerNorm")
    out.append(("mpnet.encoder.relative_attention_bias.weight", (cfg.buckets, cfg.heads)))
    if task in ("classify", "multilabel", "regression"):
        lin("classifier.dense", H, H)
        lin("classifier.out_proj", cfg.num_labels, H)
    elif task == "choice":
        lin("mpnet.pooler.dense", H, H)
        lin("classifier", 1, H)
    elif task == "ner":
        lin("classifier", cfg.num_labels, H)
    elif task == "qa":
        lin("qa_outputs", 2, H)
    else:  # mlm; the decoder's weight is the word embeddings'
        lin("lm_head.dense", H, H)
        norm("lm_head.layer_norm")
        out.append(("lm_head.bias", (cfg.vocab,)))
    return out


def is_norm(name):
    return "LayerNorm" in name or "layer_norm" in name


# ---------------------------------------------------------------------------------
# The forward, batched, float32, in the order of transformers' operations.

def relative_position_bucket(relative_position, num_buckets=NUM_BUCKETS, max_distance=MAX_DISTANCE):
    """MPNetEncoder.relative_position_bucket, step by step."""
    ret = 0
    n = -relative_position
    num_buckets //= 2
    ret += (n < 0).to(torch.long) * num_buckets
    n = torch.abs(n)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    val_if_large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)).to(torch.long)
    val_if_large = torch.min(val_if_large, torch.full_like(val_if_large, num_buckets - 1))
    return ret + torch.where(is_small, n, val_if_large)


def position_bias(cfg, w, B, L):
    """compute_position_bias without position_ids: [B, heads, L, L]."""
    context = torch.arange(L, dtype=torch.long)[:, None]
    memory = torch.arange(L, dtype=torch.long)[None, :]
    bucket = relative_position_bucket(memory - context)
    values = F.embedding(bucket, w["mpnet.encoder.relative_attention_bias.weight"])
    return values.permute([2, 0, 1]).unsqueeze(0).expand((B, -1, L, L)).contiguous()


def position_ids(input_ids):
    """create_position_ids_from_input_ids(input_ids, padding_idx=1)."""
    mask = input_ids.ne(PAD).int()
    return (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + PAD


def encoder(cfg, w, input_ids, attention_mask):
    """MPNetModel's last hidden states [B, L, H]."""
    B, L = input_ids.shape
    x = F.embedding(input_ids, w["mpnet.embeddings.word_embeddings.weight"]) + \
        F.embedding(position_ids(input_ids), w["mpnet.embeddings.position_embeddings.weight"])
    x = layer_norm(w, "mpnet.embeddings.LayerNorm", x, cfg.eps)
    ext = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * FMIN
    bias = position_bias(cfg, w, B, L)
    d = cfg.hidden // cfg.heads
    for i in range(cfg.layers):
        p = f"mpnet.encoder.layer.{i}."

        def heads(t):
            return t.view(B, -1, cfg.heads, d).transpose(1, 2)

        q, k, v = (heads(linear(w, p + "attention.attn." + n, x)) for n in ("q", "k", "v"))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
        scores += bias
        scores = scores + ext
        probs = F.softmax(scores, dim=-1)
        c = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous().view(B, L, cfg.hidden)
        a = layer_norm(w, p + "attention.LayerNorm", linear(w, p + "attention.attn.o", c) + x, cfg.eps)
        f = linear(w, p + "output.dense", cfg.act(linear(w, p + "intermediate.dense", a)))
        x = layer_norm(w, p + "output.LayerNorm", f + a, cfg.eps)
    return x


def head(cfg, w, task, h):
    if task in ("classify", "multilabel", "regression"):  # MPNetClassificationHead
        return linear(w, "classifier.out_proj", torch.tanh(linear(w, "classifier.dense", h[:, 0, :])))
    if task == "choice":  # MPNetForMultipleChoice: the pooler, classifier; [B, 1]
        return linear(w, "classifier", torch.tanh(linear(w, "mpnet.pooler.dense", h[:, 0])))
    if task == "ner":
        return linear(w, "classifier", h)
    if task == "qa":
        return linear(w, "qa_outputs", h)
    x = layer_norm(w, "lm_head.layer_norm", F.gelu(linear(w, "lm_head.dense", h)), cfg.eps)  # MPNetLMHead
    return F.linear(x, w["mpnet.embeddings.word_embeddings.weight"], w["lm_head.bias"])


def logits_of(cfg, w, task, input_ids, attention_mask):
    with torch.no_grad():
        return head(cfg, w, task, encoder(cfg, w, input_ids, attention_mask))


# ---------------------------------------------------------------------------------
# A second, deliberately naive forward for the sanity checks: float64, one unpadded
# sequence, one head, query and key at a time, the bucket of each pair computed in
# Python floats from its definition.

def naive_bucket(i, j):
    """The bucket of query i, key j: keys after the query in the upper half; distances
    below 8 each their own, longer ones 8 + floor(8 log(n / 8) / log 16), at most 15."""
    n = i - j
    upper = 16 if n < 0 else 0
    n = abs(n)
    if n < 8:
        return upper + n
    return upper + min(15, 8 + int(math.log(n / 8) / math.log(MAX_DISTANCE / 8) * 8))


def naive_logits(cfg, w, task, ids):
    f64 = Float64(w, cfg.eps)
    w, ln, lin = f64.w, f64.ln, f64.lin
    act = f64.gelu if cfg.raw.get("hidden_act", "gelu") == "gelu" else cfg.act
    L, H, nh = len(ids), cfg.hidden, cfg.heads
    D = H // nh
    pos = [PAD + 1 + k for k in range(L)]  # no id 1 inside a text
    h = ln("mpnet.embeddings.LayerNorm", w["mpnet.embeddings.word_embeddings.weight"][torch.tensor(ids)] +
           w["mpnet.embeddings.position_embeddings.weight"][torch.tensor(pos)])
    table = w["mpnet.encoder.relative_attention_bias.weight"]
    for i in range(cfg.layers):
        p = f"mpnet.encoder.layer.{i}."
        ctx = torch.zeros(L, H, dtype=torch.float64)
        for hd in range(nh):
            cols = slice(hd * D, (hd + 1) * D)
            q, k, v = (lin(p + "attention.attn." + n, h)[:, cols] for n in ("q", "k", "v"))
            for a in range(L):
                scores = [float(q[a] @ k[b]) / math.sqrt(D) + float(table[naive_bucket(a, b), hd]) for b in range(L)]
                pr = torch.softmax(torch.tensor(scores, dtype=torch.float64), 0)
                ctx[a, cols] = sum(pr[b] * v[b] for b in range(L))
        a_ = ln(p + "attention.LayerNorm", lin(p + "attention.attn.o", ctx) + h)
        h = ln(p + "output.LayerNorm", lin(p + "output.dense", act(lin(p + "intermediate.dense", a_))) + a_)
    if task in ("classify", "multilabel"):
        return lin("classifier.out_proj", torch.tanh(lin("classifier.dense", h[0])))
    return lin("classifier" if task == "ner" else "qa_outputs", h)


# ---------------------------------------------------------------------------------
# Tokenizer: BertTokenizer's basic tokenization and WordPiece, MPNet's specials and
# layout.

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"]
MASK = "<mask>"


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return any(a <= cp <= b for a, b in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                                         (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def basic_tokens(text):
    """BasicTokenizer with do_lower_case (and so strip_accents) and CJK spacing."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")):
            continue
        if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    words = []
    for tok in "".join(out).split():
        tok = "".join(c for c in unicodedata.normalize("NFD", tok.lower()) if unicodedata.category(c) != "Mn")
        cur = ""
        for ch in tok:
            if is_punctuation(ch):
                if cur:
                    words.append(cur)
                words.append(ch)
                cur = ""
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


def build_vocab():
    words = collections.Counter(w for t in corpus() for w in basic_tokens(t))
    chars = collections.Counter()
    for wd, n in words.items():
        for ch in wd:
            chars[ch] += n
    seen = sorted(ch for ch, n in chars.items() if n >= 2)
    frequent = [wd for wd, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(wd) > 1][:120]
    vocab = list(SPECIALS)
    for tok in seen + ["##" + ch for ch in seen] + ["##s", "##ing", "##ed", "##er"] + frequent + [MASK]:
        if tok not in vocab:
            vocab.append(tok)
    return vocab


class WordPieceTok:
    def __init__(self, vocab):
        self.vocab = vocab
        self.ids = {t: i for i, t in enumerate(vocab)}

    def pieces(self, text):
        out = []
        for wd in basic_tokens(text):
            if len(wd) > 100:
                out.append(self.ids["[UNK]"])
                continue
            start, sub = 0, []
            while start < len(wd):
                end, cur = len(wd), None
                while start < end:
                    s = ("##" if start > 0 else "") + wd[start:end]
                    if s in self.ids:
                        cur = self.ids[s]
                        break
                    end -= 1
                if cur is None:
                    sub = [self.ids["[UNK]"]]
                    break
                sub.append(cur)
                start = end
            out.extend(sub)
        return out

    def encode(self, a, b=None, max_len=MAX_LEN):
        x, y = self.pieces(a), self.pieces(b) if b is not None else None
        budget = max_len - (2 if y is None else 4)
        if y is None:
            x = x[:budget]
        else:  # longest_first
            while len(x) + len(y) > budget:
                if len(x) > len(y):
                    x = x[:-1]
                else:
                    y = y[:-1]
        cls, sep = self.ids["<s>"], self.ids["</s>"]
        return [cls] + x + [sep] if y is None else [cls] + x + [sep, sep] + y + [sep]

    def batch(self, texts):
        rows = [self.encode(*t) if isinstance(t, (list, tuple)) else self.encode(t) for t in texts]
        n = max(len(r) for r in rows)
        ids = [r + [PAD] * (n - len(r)) for r in rows]
        mask = [[1] * len(r) + [0] * (n - len(r)) for r in rows]
        return torch.tensor(ids), torch.tensor(mask), torch.zeros(len(rows), n, dtype=torch.long)


def added(content, i, lstrip=False):
    return {"id": i, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False, "normalized": False, "special": True}


def tokenizer_files(tok):
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json as
    MPNetTokenizerFast saves them for this vocabulary."""
    ids = tok.ids
    specials = [added(s, ids[s]) for s in SPECIALS if s != "<unk>"] + [added(MASK, ids[MASK], lstrip=True)]

    def special(t, typ=0):
        return {"SpecialToken": {"id": t, "type_id": typ}}

    def seq(s, typ=0):
        return {"Sequence": {"id": s, "type_id": typ}}

    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [special("<s>"), seq("A"), special("</s>")],
                           "pair": [special("<s>"), seq("A"), special("</s>"), special("</s>"), seq("B", 1), special("</s>", 1)],
                           "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in ("<s>", "</s>")}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                  "vocab": ids},
    }
    decoder = {str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")} for a in specials}
    config = {
        "added_tokens_decoder": decoder, "bos_token": "<s>", "clean_up_tokenization_spaces": True, "cls_token": "<s>",
        "do_lower_case": True, "eos_token": "</s>", "extra_special_tokens": {}, "mask_token": MASK, "model_max_length": 512,
        "pad_token": "<pad>", "sep_token": "</s>", "strip_accents": None, "tokenize_chinese_chars": True,
        "tokenizer_class": "MPNetTokenizer", "unk_token": "[UNK]",
    }
    smap = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
            "mask_token": {"content": MASK, "lstrip": True, "normalized": False, "rstrip": False, "single_word": False},
            "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "[UNK]"}
    return tj, config, smap


# ---------------------------------------------------------------------------------
# Fixtures.

def config_dict(task, opts, vocab_size):
    """config.json as MPNetConfig(...).save_pretrained writes it."""
    d = {
        "attention_probs_dropout_prob": 0.1, "bos_token_id": 0, "dtype": "float32", "eos_token_id": 2,
        "hidden_act": opts["hidden_act"], "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02,
        "intermediate_size": 37, "layer_norm_eps": opts["layer_norm_eps"], "max_position_embeddings": MAX_LEN + PAD + 1,
        "model_type": "mpnet", "num_attention_heads": 4, "num_hidden_layers": opts["num_hidden_layers"],
        "pad_token_id": opts.get("pad_token_id", PAD), "relative_attention_num_buckets": opts["relative_attention_num_buckets"],
        "transformers_version": "5.0.0.dev0", "vocab_size": vocab_size,
    }
    return task_config(task, "MPNet", d)


def make_all():
    tok = WordPieceTok(build_vocab())
    tj, tok_config, smap = tokenizer_files(tok)
    for task, opts in FIXTURES.items():
        name = f"mpnet-{task}"
        d = fresh_dir(name)
        with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(tok.vocab) + "\n")
        write_json(os.path.join(d, "tokenizer.json"), tj, indent=None)
        write_json(os.path.join(d, "tokenizer_config.json"), tok_config)
        write_json(os.path.join(d, "special_tokens_map.json"), smap)
        cfgd = config_dict(task, opts, len(tok.vocab))
        cfg = Cfg(cfgd)
        w = random_weights(param_shapes(cfg, task), is_norm)
        texts = [list(p) for p in QA_PAIRS] if task == "qa" else sms_texts()
        ids, mask, types = tok.batch(texts)
        logits = logits_of(cfg, w, task, ids, mask)
        write_checkpoint(d, cfgd, w, expected_of(task, REFERENCE, TOKENIZER, texts, ids, mask, types, logits))
        print(f"{name}: logits {list(logits.shape)}, |max| {logits.abs().max():.3f}, lengths {mask.sum(1).tolist()}")


def batch_of(exp):
    return torch.tensor(exp["input_ids"]), torch.tensor(exp["attention_mask"])


def check(dirs):
    check_reference(dirs, Cfg, param_shapes, lambda cfg, w, exp: logits_of(cfg, w, exp["task"], *batch_of(exp)),
                    ignore=["mpnet.embeddings.position_ids"])  # transformers before 4.31 saved it


# ---------------------------------------------------------------------------------
# Sanity checks.

def sanity():
    v = Sanity()
    claim, report = v.claim, v.report
    v.exact_gelu(fixturelib.activation("gelu"))
    # Buckets by hand: query 0 against keys at distance 0..7 are buckets 16 + n (keys
    # after the query, upper half) but 0 for n = 0; 8 -> 16 + 8; 12 -> 16 + 8 + floor(8
    # log 1.5 / log 16) = 16 + 9; 200 -> 31; keys before the query the lower half.
    rel = torch.tensor([0, 1, 7, 8, 12, 16, 200, -1, -7, -8, -12, -16, -200])
    got = relative_position_bucket(rel).tolist()
    want = [0, 17, 23, 24, 25, 26, 31, 1, 7, 8, 9, 10, 15]
    claim(f"buckets of key - query {rel.tolist()}: {got} == {want}", got == want)
    r = torch.arange(-300, 301)
    claim("float32 buckets == per-pair Python-float buckets for |i - j| <= 300",
          relative_position_bucket(r).tolist() == [naive_bucket(0, int(x)) for x in r])
    ids = torch.tensor([[0, 5, 1, 6, 2, 1, 1]])
    claim(f"position ids of {ids.tolist()}: {position_ids(ids).tolist()} == [[2, 3, 1, 4, 5, 1, 1]]",
          position_ids(ids).tolist() == [[2, 3, 1, 4, 5, 1, 1]])
    for task in FIXTURES:
        d = os.path.join(fixturelib.OUT, f"mpnet-{task}")
        cfg, w, exp = load_dir(d, Cfg)
        ids, mask = batch_of(exp)
        tok = WordPieceTok([line.rstrip("\n") for line in open(os.path.join(d, "vocab.txt"), encoding="utf-8")])
        texts = [tuple(t) if isinstance(t, list) else t for t in exp["texts"]]
        claim(f"{task}: the texts encode to expected.json's ids", tok.batch(texts)[0].tolist() == exp["input_ids"])
        base = logits_of(cfg, w, task, ids, mask)
        v.expected(task, base, exp)
        w0 = dict(w, **{"mpnet.encoder.relative_attention_bias.weight": torch.zeros_like(w["mpnet.encoder.relative_attention_bias.weight"])})
        delta = (logits_of(cfg, w0, task, ids, mask) - base).abs().max().item()
        claim(f"{task}: without the relative bias the logits change by {delta:.3g}", delta > 1e-2)
        v.per_sequence(
            task, mask, base, lambda r, n: logits_of(cfg, w, task, ids[r:r + 1, :n], mask[r:r + 1, :n])[0],
            lambda r, n: naive_logits(cfg, w, task, ids[r, :n].tolist()))
    v.done()


if __name__ == "__main__":
    main(__doc__, check, sanity, make_all, "--make")
