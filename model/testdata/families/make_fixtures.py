"""Makes the transformers fixtures TestFamiliesMatchTransformersFixtures compares against:
for each family (bert, distilbert, roberta, albert, electra) and head (classify,
multilabel, ner, qa), a checkpoint transformers made and saved, and its logits on real
texts (fixturelib.py's: the first 8 SMS messages of data/sms_spam, 3 question/context
pairs for qa). fixturelib.py, beside this file, holds what the fixture scripts share
(texts, label counts, random weights, spm_train's options, expected.json, the --check
loop); it does not import transformers, so make_modernbert.py and make_debertav2.py
use it too.

Run from the repository root, with torch and transformers (5.x) installed:

    python3 model/testdata/families/make_fixtures.py

It writes model/testdata/families/fixtures/<family>-<task>/: config.json and
model.safetensors (save_pretrained), the tokenizer files (save_pretrained: WordPiece
vocab.txt for BERT, DistilBERT and ELECTRA, byte-level BPE vocab.json/merges.txt for
RoBERTa, a Unigram tokenizer.json for ALBERT, each trained on the texts), and
expected.json: the task, the texts, the encoded batch (input_ids, attention_mask,
token_type_ids, [B][L]) and transformers' logits ([B, N], [B, L, N] or [B, L, 2] as a
flat row-major list, rounded to 1e-7). Weights are random (seed 0) and scaled up
(fixturelib.py's random_weights: normal, std 0.2; LayerNorm weights 1 + that) so the
logits are far from flat; hidden size 16 (4 heads), so the 20 checkpoints are about
1 MB.

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

sys.dont_write_bytecode = True  # importing fixturelib would leave a __pycache__ in the repository
# fixturelib.py, beside this file: the texts, tasks, weights, safetensors and checks
# the fixture scripts share.
from fixturelib import (  # noqa: E402
    HEAD, HERE, NUM_LABELS, OUT, QA_PAIRS, check_logits, corpus, expected_of, random_weights, sms_texts,
    spm_train, write_corpus)

# Each task's Auto class (AutoModelForSequenceClassification, ...) and label count.
TASKS = {task: (getattr(transformers, "AutoModel" + HEAD[task]), n) for task, n in NUM_LABELS.items()}


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
    text = write_corpus(os.path.join(tmp, "corpus.txt"))
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
        spm_train(text, os.path.join(tmp, "spiece"),
                  ["--pad_id=0", "--unk_id=1", "--bos_id=-1", "--eos_id=-1", "--control_symbols=[CLS],[SEP],[MASK]"])
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
    """Random weights far from transformers' init, so logits are not flat: fixturelib's
    random_weights in the order of named_parameters (sinusoidal positions left as they are)."""
    params = [(name, p) for name, p in model.named_parameters()
              if not (getattr(cfg, "sinusoidal_pos_embds", False) and "position_embeddings" in name)]
    w = random_weights([(name, p.shape) for name, p in params], lambda name: "LayerNorm" in name or "layer_norm" in name)
    with torch.no_grad():
        for name, p in params:
            p.copy_(w[name])


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
    expected = expected_of(task, transformers.__version__, type(tok).__name__, texts, ids, enc["attention_mask"], types, logits)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"{name}: logits {list(logits.shape)}, |max| {logits.abs().max():.3f}")


def check(dirs):
    """transformers loads checkpoints bertnode saved and computes the fixture's logits."""
    def logits_for(d, exp):
        model = TASKS[exp["task"]][0].from_pretrained(d, attn_implementation="eager").eval()
        enc = {k: torch.tensor(exp[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
        return logits_of(model, exp["task"], enc)

    check_logits(dirs, logits_for)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check"]:
        check(sys.argv[2:])
    else:
        npm = sys.argv[2] if sys.argv[1:2] == ["--npm-tokenizers"] else None
        for family in ("bert", "distilbert", "roberta", "albert", "electra"):
            for task in TASKS:
                make(family, task, npm)
