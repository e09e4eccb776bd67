"""What the fixture scripts beside this file share: make_fixtures.py (transformers'
checkpoints of the BERT families), reference.py (a plain-torch forward of those
families), make_modernbert.py and make_debertav2.py (reference implementations that
write their own fixtures). It imports torch and numpy, never transformers, so the
scripts that run without transformers can use it; each script imports it from its own
directory, which Python puts on sys.path for a script run as a file.

Here: the texts every fixture encodes (the first SMS messages of data/sms_spam, the
question/context pairs) and the corpus the tokenizers are trained on, the tasks and
their label counts, spm_train's Unigram options, the random weights (normal, std 0.2,
from one generator seeded 0; norm weights 1 + that), a pure-Python safetensors writer
and reader, the config.json keys of the task heads, expected.json, the --check loop,
the pieces of the reference forwards and their --sanity checks that are the same for
every family, and the reference scripts' command line.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
SMS = os.path.join(HERE, "..", "..", "..", "data", "sms_spam", "SMSSpamCollection")

# ---------------------------------------------------------------------------------
# Texts and tasks.

QA_PAIRS = [
    ("Where is the Eiffel Tower?", "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."),
    ("When was it built?", "It was constructed from 1887 to 1889 as the entrance to the 1889 World's Fair."),
    ("Who designed it?", "The tower is named after the engineer Gustave Eiffel, whose company designed and built it."),
]

# The tasks in the order the fixtures are made, and their label counts (qa: start, end).
NUM_LABELS = {"classify": 3, "multilabel": 4, "ner": 5, "qa": 2}
# The head of each task, as transformers names its classes: "Bert" + HEAD[task],
# "AutoModel" + HEAD[task].
HEAD = {
    "classify": "ForSequenceClassification",
    "multilabel": "ForSequenceClassification",
    "ner": "ForTokenClassification",
    "qa": "ForQuestionAnswering",
}


def sms_texts(n=8):
    texts = []
    with open(SMS, encoding="utf-8") as f:
        for line in f:
            texts.append(line.rstrip("\n").split("\t", 1)[1])
            if len(texts) == n:
                break
    return texts


# The masked-LM fixtures' texts: the first SMS messages with some words made [MASK], one
# of them the first word.
MASKED_WORDS = [(0, 3), (2,), (1, 6), (4,)]


def masked_texts():
    out = []
    for text, masked in zip(sms_texts(len(MASKED_WORDS)), MASKED_WORDS):
        words = text.split(" ")
        for i in masked:
            words[i] = "[MASK]"
        out.append(" ".join(words))
    return out


def mlm_targets(input_ids, mask, mask_id, vocab_size):
    """A masked-LM fixture's positions, whose logits expected.json keeps (each [MASK],
    the first and the last real token of every text), and labels for its loss: random
    ids at each [MASK] and at the second token, -100 elsewhere."""
    g = torch.Generator().manual_seed(1)
    labels = torch.full(input_ids.shape, -100, dtype=torch.int64)
    positions = []
    for r in range(input_ids.shape[0]):
        n = int(mask[r].sum())
        masked = [l for l in range(n) if input_ids[r, l] == mask_id]
        assert masked, f"text {r} has no [MASK]"
        positions += [[r, l] for l in sorted({0, n - 1, *masked})]
        for l in masked + [1]:
            labels[r, l] = int(torch.randint(vocab_size, (1,), generator=g))
    return {"positions": positions, "labels": labels.tolist()}


def mlm_loss(logits, labels):
    """The masked-LM classes' loss: the mean cross-entropy over the labels that are not
    -100 (ModernBertForMaskedLM's sparse prediction gives the same mean)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def stored(task, logits, exp):
    """The logits expected.json keeps: all, or a masked-LM fixture's rows at its positions."""
    if task != "mlm":
        return logits
    return torch.stack([logits[r, l] for r, l in exp["positions"]])


# BertTokenizerFast's pipeline (lower case, BertPreTokenizer, WordPiece, [CLS] A [SEP],
# padded to the longest) over a vocab.txt, for tokenizers' npm binding: it encodes the
# masked-LM fixtures' texts where the tokenizers Python binding is missing.
BERT_JS = r"""
const t = require('tokenizers')
const fs = require('fs')
async function main() {
  const [vocabPath, textsPath, resultPath] = process.argv.slice(2)
  const vocab = {}
  fs.readFileSync(vocabPath, 'utf8').split('\n').filter((l) => l !== '').forEach((tok, i) => { vocab[tok] = i })
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
  const spec = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: specials.map((s) => ({ id: vocab[s], content: s, single_word: false, lstrip: false, rstrip: false,
      normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] } } },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  }
  const tk = t.Tokenizer.fromString(JSON.stringify(spec))
  tk.setTruncation(128)
  const texts = JSON.parse(fs.readFileSync(textsPath, 'utf8'))
  const single = []
  for (const x of texts) single.push((await tk.encode(x, null)).getIds())
  tk.setPadding({ maxLength: Math.max(...single.map((s) => s.length)), padId: vocab['[PAD]'], padToken: '[PAD]' })
  const out = { mask_id: vocab['[MASK]'], input_ids: [], attention_mask: [], token_type_ids: [] }
  for (const x of texts) {
    const e = await tk.encode(x, null)
    out.input_ids.push(e.getIds())
    out.attention_mask.push(e.getAttentionMask())
    out.token_type_ids.push(e.getTypeIds())
  }
  fs.writeFileSync(resultPath, JSON.stringify(out))
}
main().catch((e) => { console.error(e); process.exit(1) })
"""


def encode_masked(npm, vocab, texts):
    """texts encoded as BertTokenizerFast(vocab) pads a batch, by tokenizers' npm binding
    (npm: the node_modules folder holding tokenizers)."""
    tmp = tempfile.mkdtemp(prefix="bert-tok-")
    try:
        js, tp, rp = (os.path.join(tmp, n) for n in ("bert.js", "texts.json", "result.json"))
        with open(js, "w") as f:
            f.write(BERT_JS)
        with open(tp, "w") as f:
            json.dump(texts, f)
        subprocess.run(["node", js, vocab, tp, rp], check=True, env=dict(os.environ, NODE_PATH=npm))
        with open(rp) as f:
            return json.load(f)
    finally:
        shutil.rmtree(tmp)


def corpus():
    return sms_texts() + [t for pair in QA_PAIRS for t in pair]


def write_corpus(path):
    """The corpus, a text a line, for the trainers that read files."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(corpus()) + "\n")
    return path


def spm_train(text, prefix, ids, vocab_size=300, cwd=None):
    """spm_train's SentencePiece Unigram model of text at prefix.model; ids: the flags
    that place the special pieces (--pad_id=... and so on)."""
    subprocess.run(["spm_train", f"--input={text}", f"--model_prefix={prefix}",
                    "--model_type=unigram", f"--vocab_size={vocab_size}", "--hard_vocab_limit=false",
                    "--normalization_rule_name=identity",  # nmt_nfkc's table is 240 KB
                    *ids, "--num_threads=1", "--minloglevel=2"], check=True, cwd=cwd)


# ---------------------------------------------------------------------------------
# Weights and safetensors.

def random_weights(shapes, is_norm):
    """{name: tensor} for (name, shape) pairs: normal, std 0.2, from one torch.Generator
    seeded 0 drawn in the pairs' order; weights of the norms (is_norm(name)) 1 + that.
    Far from transformers' init, so the logits are not flat."""
    g = torch.Generator().manual_seed(0)
    w = {}
    for name, shape in shapes:
        noise = torch.randn(shape, generator=g) * 0.2
        w[name] = (1 + noise) if is_norm(name) and name.endswith("weight") else noise
    return w


def save_safetensors(path, tensors):
    """F32 tensors, sorted by name, with safetensors' {"format": "pt"} metadata."""
    names = sorted(tensors)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for n in names:
        t = tensors[n].detach().to(torch.float32).contiguous()
        b = t.numpy().astype("<f4").tobytes()
        header[n] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8"}


def load_safetensors(path, dtypes=("F32", "F16", "BF16", "I64")):
    """{name: tensor}: floats as float32, I64 as int64; a dtype not in dtypes raises."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in dtypes:
            raise ValueError(f"{path}: {name} is {info['dtype']}, not {' or '.join(dtypes)}")
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=SAFETENSORS_DTYPES[info["dtype"]]).copy()
        if info["dtype"] == "BF16":
            t = torch.from_numpy((arr.astype(np.uint32) << 16).view(np.float32))
        elif info["dtype"] == "I64":
            t = torch.from_numpy(arr)
        else:
            t = torch.from_numpy(arr.astype(np.float32))
        out[name] = t.reshape(info["shape"])
    return out


# ---------------------------------------------------------------------------------
# Pieces of the reference forwards.

FMIN = torch.finfo(torch.float32).min


def gelu_new(x):  # transformers' NewGELUActivation
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


# transformers' ACT2FN entries, as far as the reference forwards need them.
ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_new": gelu_new,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def activation(name, names=tuple(ACTIVATIONS)):
    """ACTIVATIONS[name]; a name not in names raises."""
    if name not in names:
        raise ValueError(f"activation {name} is not implemented here")
    return ACTIVATIONS[name]


def layer_norm(w, prefix, x, eps):
    """LayerNorm over the last dimension; the bias only where w has one."""
    return F.layer_norm(x, (x.shape[-1],), w[prefix + ".weight"], w.get(prefix + ".bias"), eps)


def linear(w, prefix, x):
    return F.linear(x, w[prefix + ".weight"], w.get(prefix + ".bias"))


class Float64:
    """The naive forwards' float64 arithmetic, written out: the weights w as float64,
    LayerNorm with eps, linear maps, exact-erf GELU; a bias only where w has one."""

    def __init__(self, w, eps):
        self.w = {k: v.double() for k, v in w.items()}
        self.eps = eps

    def ln(self, prefix, x):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps) * self.w[prefix + ".weight"]
        return y + self.w[prefix + ".bias"] if prefix + ".bias" in self.w else y

    def lin(self, prefix, x):
        y = x @ self.w[prefix + ".weight"].T
        return y + self.w[prefix + ".bias"] if prefix + ".bias" in self.w else y

    @staticmethod
    def gelu(x):
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


# ---------------------------------------------------------------------------------
# Fixture files.

def task_config(task, model, d):
    """config.json's keys, sorted, for the task head of model (transformers' prefix of
    the class names, "ModernBert"): d with architectures, id2label and label2id (LABEL_i)
    and, for multilabel, problem_type."""
    n = NUM_LABELS[task]
    d = dict(d, architectures=[model + HEAD[task]],
             id2label={str(i): f"LABEL_{i}" for i in range(n)}, label2id={f"LABEL_{i}": i for i in range(n)})
    if task == "multilabel":
        d["problem_type"] = "multi_label_classification"
    return dict(sorted(d.items()))


def write_json(path, obj, indent=2):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def expected_of(task, transformers, tokenizer, texts, input_ids, attention_mask, token_type_ids, logits):
    """expected.json: the task, who computed the logits (transformers' version or a
    reference implementation's name) with which torch and tokenizer, the texts, the
    batch ([B][L] lists of the tensors given) and the logits, a flat row-major list
    rounded to 1e-7, with their shape."""
    return {
        "task": task, "transformers": transformers, "torch": torch.__version__, "tokenizer": tokenizer,
        "texts": texts, "input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist(),
        "token_type_ids": token_type_ids.tolist(), "shape": list(logits.shape),
        "logits": [round(x, 7) for x in logits.reshape(-1).tolist()],
    }


def fresh_dir(name):
    """OUT/name, emptied."""
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def write_checkpoint(d, config, weights, expected):
    """config.json, model.safetensors and expected.json in d."""
    write_json(os.path.join(d, "config.json"), config)
    save_safetensors(os.path.join(d, "model.safetensors"), weights)
    write_json(os.path.join(d, "expected.json"), expected, indent=1)


def load_dir(d, make_cfg):
    """make_cfg(config.json), the weights of model.safetensors and expected.json."""
    cfg = make_cfg(read_json(os.path.join(d, "config.json")))
    return cfg, load_safetensors(os.path.join(d, "model.safetensors")), read_json(os.path.join(d, "expected.json"))


# ---------------------------------------------------------------------------------
# --check and --sanity.

def check_logits(dirs, logits_for, limit=1e-4):
    """For each checkpoint directory d, logits_for(d, its expected.json) against
    expected.json's logits; exits non-zero when they differ by more than limit."""
    worst = 0.0
    for d in dirs:
        exp = read_json(os.path.join(d, "expected.json"))
        got = logits_for(d, exp).reshape(-1)
        diff = (got - torch.tensor(exp["logits"])).abs().max().item()
        worst = max(worst, diff)
        print(f"{d}: max |diff| {diff:.2g}")
    if worst > limit:
        sys.exit(f"logits differ by {worst}")


def check_reference(dirs, make_cfg, param_shapes, forward, ignore=()):
    """check_logits for a reference implementation: each directory's model.safetensors
    must hold the tensors param_shapes(cfg, task) names (after dropping those in
    ignore), and forward(cfg, weights, expected) gives logits of expected.json's shape."""
    def logits_for(d, exp):
        cfg = make_cfg(read_json(os.path.join(d, "config.json")))
        w = load_safetensors(os.path.join(d, "model.safetensors"))
        for name in ignore:
            w.pop(name, None)
        want = set(n for n, _ in param_shapes(cfg, exp["task"]))
        if set(w) != want:
            sys.exit(f"{d}: tensors missing {sorted(want - set(w))}, unexpected {sorted(set(w) - want)}")
        got = forward(cfg, w, exp)
        if list(got.shape) != exp["shape"]:
            sys.exit(f"{d}: logits {list(got.shape)}, expected {exp['shape']}")
        return got

    check_logits(dirs, logits_for)


class Sanity:
    """The --sanity checks' verdicts: each printed as it comes, ok or FAIL; done()
    exits non-zero if any failed."""

    def __init__(self):
        self.ok = True

    def claim(self, what, good):
        self.ok &= bool(good)
        print(f"{'ok  ' if good else 'FAIL'} {what}")

    def report(self, what, value, limit):
        good = value <= limit
        self.ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {what}: {value:.3g} (limit {limit:g})")

    def expected(self, task, base, exp):
        """base, this code's logits, against expected.json's. Both are float32 forwards
        of one model, but their sums may be ordered differently: OpenBLAS picks its sgemm
        kernel by CPU and libtorch splits sums by thread (OpenBLAS's Haswell kernel on one
        thread reproduces make_debertav2.py's and make_modernbert.py's fixtures to their
        1e-7 rounding; an AMD EPYC's kernel differs by up to 14.5 u max|logit|). Each
        rounding is relative u = 2^-24, so the difference scales with u and the logits'
        magnitude, times how many roundings reach a logit: 5 to 15 for these small
        models (their float64 checks measure each forward's own part of it). The limit,
        64 u max|logit| + 5e-8 (expected.json's rounding), leaves 4 times that and stays
        10^4 times below what a wrong DeBERTa bucket, scale or p2c index changes (0.2 to 1.8)."""
        want = torch.tensor(exp["logits"])
        limit = 64 * 2.0 ** -24 * want.abs().max().item() + 5e-8
        self.report(f"{task}: this code vs expected.json", (base.reshape(-1) - want).abs().max().item(), limit)

    def per_sequence(self, task, mask, base, alone, naive):
        """per_sequence's two maxima, reported: each text alone within 1e-5 of its part of
        the padded batch, the float64 forward within 1e-4."""
        worst_pad, worst_naive = per_sequence(task, mask, base, alone, naive)
        self.report(f"{task}: each text alone vs padded in the batch", worst_pad, 1e-5)
        self.report(f"{task}: float64 per-element naive forward vs batched float32", worst_naive, 1e-4)

    def exact_gelu(self, gelu):
        self.report("exact-erf GELU(1) vs 0.8413447460685429", abs(gelu(torch.tensor(1.0)).item() - 0.8413447460685429), 1e-7)

    def done(self):
        if not self.ok:
            sys.exit("sanity checks failed")


def per_sequence(task, mask, base, alone, naive):
    """For each sequence r of the batch, n real tokens: the largest differences from its
    part of the batched logits base of alone(r, n) (the same forward on the sequence
    alone, unpadded) and of naive(r, n) (a float64 forward). Returns both maxima."""
    worst_pad, worst_naive = 0.0, 0.0
    for r in range(mask.shape[0]):
        n = int(mask[r].sum())
        batched = base[r] if task in ("classify", "multilabel") else base[r, :n]
        worst_pad = max(worst_pad, (alone(r, n) - batched).abs().max().item())
        worst_naive = max(worst_naive, (naive(r, n) - batched.double()).abs().max().item())
    return worst_pad, worst_naive


def main(doc, check, sanity, make, make_flag, make_args=0):
    """A reference script's command line: --check DIR..., --sanity, or make_flag with
    make_args arguments for make; anything else prints doc and exits non-zero."""
    args = sys.argv[1:]
    if args[:1] == ["--check"]:
        check(args[1:])
    elif args[:1] == ["--sanity"]:
        sanity()
    elif args[:1] == [make_flag] and len(args) == 1 + make_args:
        make(*args[1:])
    else:
        sys.exit(doc)
