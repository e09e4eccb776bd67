"""Makes the transformers fixtures TestFamiliesMatchTransformersFixtures compares against:
for each family (bert, distilbert, roberta, albert, electra) and head (classify,
multilabel, ner, qa), a checkpoint transformers made and saved, and its logits on real
texts.

Run from the repository root, with torch and transformers (5.x) installed:

    python3 model/testdata/families/make_fixtures.py

It writes model/testdata/families/fixtures/<family>-<task>/: config.json and
model.safetensors (save_pretrained), the tokenizer files (save_pretrained: WordPiece
vocab.txt for BERT, DistilBERT and ELECTRA, byte-level BPE vocab.json/merges.txt for
RoBERTa, a Unigram tokenizer.json for ALBERT, each trained on the texts), and
expected.json: the task, the texts, the encoded batch (input_ids, attention_mask,
token_type_ids, [B][L]) and transformers' logits ([B, N], [B, L, N] or [B, L, 2] as a
flat row-major list, rounded to 1e-7). Weights are random (seed 0) and scaled up
(normal, std 0.2; LayerNorm weights 1 + that) so the logits are far from flat; hidden
size 16 (4 heads), so the 20 checkpoints are about 1 MB.

Without the tokenizers Python binding (a Rust extension):

    python3 model/testdata/families/make_fixtures.py --npm-tokenizers NODE_MODULES

trains the vocabularies with tokenizers' own trainers through its npm binding (NODE_MODULES
holds `tokenizers`; train_vocab.js for WordPiece, tokenize/testdata/reference.js
train-bpe for RoBERTa's byte-level BPE) or with spm_train (ALBERT: a SentencePiece
Unigram spiece.model, identity normalization), and encodes with transformers' Python
("slow") tokenizer classes, which save vocab.txt, vocab.json/merges.txt or spiece.model
with tokenizer_config.json; no tokenizer.json. tokenizers' WordPiece trainer orders
equally frequent pairs differently from run to run, so a rerun makes other (equally
valid) vocabularies, ids and logits.

The committed fixtures were made that way: transformers 5.0.0.dev0 at commit
4d0b6758b90aa54e4077171e6d42c55e0c01c622 (source snapshot, 2025-10-28),
huggingface_hub v1.0.0.rc6, Debian's torch 1.13.0a0, npm tokenizers 0.23.2 and
sentencepiece 0.1.97, with eager attention. That transformers asks for torch >= 2.2 and
the tokenizers and safetensors packages; a launcher outside the repository stood in for
them: a pure-Python safetensors, no-op stand-ins for the torch 2 modules and signatures
transformers touches at import or load time (torch.compiler, torch._dynamo,
torch.distributed.tensor, pytree registration, bare @torch.no_grad,
named_parameters(remove_duplicate=), load_state_dict(assign=)), and fixes to its
AddedToken stand-in (hashing, state copies). The BERT-family eager forwards ran on torch
1.13's own ops.

    python3 model/testdata/families/make_fixtures.py --check DIR...

loads checkpoint directories bertnode saved from the fixtures (the Go test keeps them
when BERTNODE_KEEP_OURS names a folder) with transformers' Auto classes and checks
their logits on expected.json's batch: transformers loads ours.
"""
import json
import os
import shutil
import subprocess
import sys

import torch
import transformers
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
SMS = os.path.join(HERE, "..", "..", "..", "data", "sms_spam", "SMSSpamCollection")

QA_PAIRS = [
    ("Where is the Eiffel Tower?", "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."),
    ("When was it built?", "It was constructed from 1887 to 1889 as the entrance to the 1889 World's Fair."),
    ("Who designed it?", "The tower is named after the engineer Gustave Eiffel, whose company designed and built it."),
]

TASKS = {
    "classify": (AutoModelForSequenceClassification, 3),
    "multilabel": (AutoModelForSequenceClassification, 4),
    "ner": (AutoModelForTokenClassification, 5),
    "qa": (AutoModelForQuestionAnswering, 2),
}


def sms_texts(n=8):
    texts = []
    with open(SMS, encoding="utf-8") as f:
        for line in f:
            texts.append(line.rstrip("\n").split("\t", 1)[1])
            if len(texts) == n:
                break
    return texts


def corpus():
    return sms_texts() + [t for pair in QA_PAIRS for t in pair]


def tokenizer_class(name):
    """transformers 5 names the tokenizers-backed classes without "Fast"; 4.x with."""
    return getattr(transformers, name + "Fast", None) or getattr(transformers, name)


def tokenizer_for(family, tmp, npm=None):
    """A tokenizer of the family's kind trained on the texts, loaded by transformers."""
    if npm:
        return slow_tokenizer_for(family, tmp, npm)
    import tokenizers

    os.makedirs(tmp, exist_ok=True)
    if family in ("bert", "distilbert", "electra"):
        wp = tokenizers.BertWordPieceTokenizer(lowercase=True)
        wp.train_from_iterator(corpus(), vocab_size=400, min_frequency=1,
                               special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        wp.save_model(tmp)  # vocab.txt
        name = {"bert": "BertTokenizer", "distilbert": "DistilBertTokenizer", "electra": "ElectraTokenizer"}[family]
        return tokenizer_class(name).from_pretrained(tmp, do_lower_case=True)
    if family == "roberta":
        bpe = tokenizers.ByteLevelBPETokenizer()
        bpe.train_from_iterator(corpus(), vocab_size=400, min_frequency=1,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        bpe.save_model(tmp)  # vocab.json, merges.txt
        return tokenizer_class("RobertaTokenizer").from_pretrained(tmp)
    if family == "albert":
        from tokenizers.processors import TemplateProcessing

        uni = tokenizers.SentencePieceUnigramTokenizer()
        uni.train_from_iterator(corpus(), vocab_size=300, unk_token="<unk>",
                                special_tokens=["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"])
        t = uni._tokenizer
        t.post_processor = TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", t.token_to_id("[CLS]")), ("[SEP]", t.token_to_id("[SEP]"))])
        return transformers.PreTrainedTokenizerFast(
            tokenizer_object=t, pad_token="<pad>", unk_token="<unk>", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    raise ValueError(family)


def slow_tokenizer_for(family, tmp, npm):
    """Without the tokenizers Python binding: the vocabulary trained by tokenizers' own
    trainers through its npm binding (WordPiece; RoBERTa's byte-level BPE) or by
    spm_train (ALBERT's SentencePiece Unigram, as albert-base-v2 ships it), loaded by
    transformers' Python ("slow") tokenizer of the family."""
    os.makedirs(tmp, exist_ok=True)
    text = os.path.join(tmp, "corpus.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("\n".join(corpus()) + "\n")
    env = dict(os.environ, NODE_PATH=npm)
    if family in ("bert", "distilbert", "electra"):
        subprocess.run(["node", os.path.join(HERE, "train_vocab.js"), text, tmp, "400"], check=True, env=env)
        name = {"bert": "BertTokenizer", "distilbert": "DistilBertTokenizer", "electra": "ElectraTokenizer"}[family]
        return getattr(transformers, name).from_pretrained(tmp, do_lower_case=True)
    if family == "roberta":  # 4 specials, 256 bytes, 139 merges, <mask>
        reference = os.path.join(HERE, "..", "..", "..", "tokenize", "testdata", "reference.js")
        subprocess.run(["node", reference, "train-bpe", text, tmp, "139"], check=True, env=env)
        os.remove(os.path.join(tmp, "tokenizer.json"))
        return transformers.RobertaTokenizer.from_pretrained(tmp)
    if family == "albert":
        subprocess.run(["spm_train", f"--input={text}", f"--model_prefix={os.path.join(tmp, 'spiece')}",
                        "--model_type=unigram", "--vocab_size=300", "--hard_vocab_limit=false",
                        "--normalization_rule_name=identity",  # nmt_nfkc's table is 240 KB
                        "--pad_id=0", "--unk_id=1", "--bos_id=-1", "--eos_id=-1",
                        "--control_symbols=[CLS],[SEP],[MASK]", "--num_threads=1", "--minloglevel=2"], check=True)
        return transformers.AlbertTokenizer(os.path.join(tmp, "spiece.model"))
    raise ValueError(family)


def config_for(family, tok, task):
    n = TASKS[task][1]
    common = dict(vocab_size=len(tok), max_position_embeddings=64, pad_token_id=tok.pad_token_id, num_labels=n)
    if task == "multilabel":
        common["problem_type"] = "multi_label_classification"
    if family == "distilbert":
        return transformers.DistilBertConfig(dim=16, n_layers=2, n_heads=4, hidden_dim=19, sinusoidal_pos_embds=(task == "ner"), **common)
    body = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=19, **common)
    if family == "bert":
        return transformers.BertConfig(**body)
    if family == "roberta":
        body["max_position_embeddings"] = 64 + tok.pad_token_id + 1
        return transformers.RobertaConfig(type_vocab_size=1, layer_norm_eps=1e-5, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **body)
    if family == "electra":
        return transformers.ElectraConfig(embedding_size=8, **body)
    if family == "albert":
        body["num_hidden_layers"] = 3
        return transformers.AlbertConfig(embedding_size=8, num_hidden_groups=2 if task == "qa" else 1,
                                         inner_group_num=2 if task == "qa" else 1, hidden_dropout_prob=0.1, **body)
    raise ValueError(family)


def scale_weights(model, cfg):
    """Random weights far from transformers' init, so logits are not flat."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if getattr(cfg, "sinusoidal_pos_embds", False) and "position_embeddings" in name:
                continue
            noise = torch.randn(p.shape, generator=g) * 0.2
            if "LayerNorm" in name or "layer_norm" in name:
                p.copy_((1 + noise) if name.endswith("weight") else noise)
            else:
                p.copy_(noise)


def batch(tok, task):
    if task == "qa":
        qs, cs = zip(*QA_PAIRS)
        texts = [list(p) for p in QA_PAIRS]
        enc = tok(list(qs), list(cs), padding=True, truncation=True, max_length=64, return_tensors="pt")
    else:
        texts = sms_texts()
        enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    return texts, enc


def logits_of(model, task, enc):
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    if model.config.model_type == "distilbert":  # no token types
        inputs.pop("token_type_ids", None)
    with torch.no_grad():
        out = model(**inputs)
    if task == "qa":
        return torch.stack([out.start_logits, out.end_logits], dim=-1)
    return out.logits


def make(family, task, npm=None):
    name = f"{family}-{task}"
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    tok = tokenizer_for(family, os.path.join(d, ".tok"), npm)
    cfg = config_for(family, tok, task)
    torch.manual_seed(0)
    model = TASKS[task][0].from_config(cfg, attn_implementation="eager").eval()
    scale_weights(model, cfg)
    model.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    shutil.rmtree(os.path.join(d, ".tok"))
    texts, enc = batch(tok, task)
    logits = logits_of(model, task, enc)
    ids = enc["input_ids"]
    types = enc.get("token_type_ids", torch.zeros_like(ids))
    expected = {
        "task": task, "transformers": transformers.__version__, "torch": torch.__version__, "tokenizer": type(tok).__name__,
        "texts": texts, "input_ids": ids.tolist(), "attention_mask": enc["attention_mask"].tolist(),
        "token_type_ids": types.tolist(), "shape": list(logits.shape), "logits": [round(x, 7) for x in logits.reshape(-1).tolist()],
    }
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"{name}: logits {list(logits.shape)}, |max| {logits.abs().max():.3f}")


def check(dirs):
    """transformers loads checkpoints bertnode saved and computes the fixture's logits."""
    worst = 0.0
    for d in dirs:
        with open(os.path.join(d, "expected.json")) as f:
            exp = json.load(f)
        model = TASKS[exp["task"]][0].from_pretrained(d, attn_implementation="eager").eval()
        enc = {k: torch.tensor(exp[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
        got = logits_of(model, exp["task"], enc).reshape(-1)
        diff = (got - torch.tensor(exp["logits"])).abs().max().item()
        worst = max(worst, diff)
        print(f"{d}: max |diff| {diff:.2g}")
    if worst > 1e-4:
        sys.exit(f"logits differ by {worst}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check"]:
        check(sys.argv[2:])
    else:
        npm = sys.argv[2] if sys.argv[1:2] == ["--npm-tokenizers"] else None
        for family in ("bert", "distilbert", "roberta", "albert", "electra"):
            for task in TASKS:
                make(family, task, npm)
