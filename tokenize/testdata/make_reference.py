#!/usr/bin/env python3
"""References from the real roberta-base and albert-base-v2 tokenizers (not run here:
these machines have neither transformers nor the hub).

On a machine with `pip install transformers tokenizers sentencepiece protobuf` and the
Hugging Face hub (or its cache):

    cd tokenize/testdata && python3 make_reference.py [OUT_DIR]   # default: real/

For each model it writes OUT_DIR/<model>/ with the tokenizer files as
save_pretrained writes them (tokenizer.json and the slow files: vocab.json +
merges.txt, spiece.model) and reference.jsonl.gz: the encodings, by the fast
(Rust) tokenizers, of the same cases as reference.jsonl.gz (its texts, pairs,
truncations and pre-split words), in the same format. TestMatchesRealModels
compares ours with them when OUT_DIR is testdata/real.
"""
import gzip, json, os, sys

from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "real")
MODELS = {"roberta-base": "roberta", "albert-base-v2": "albert"}


def cases():
    seen, out = set(), []
    with gzip.open(os.path.join(HERE, "reference.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            c = json.loads(line)
            key = json.dumps([c["kind"], c.get("text"), c.get("pair"), c.get("words"), c.get("max_length")])
            if key not in seen:
                seen.add(key)
                out.append({k: c[k] for k in ("kind", "text", "pair", "words", "max_length") if k in c})
    return out


def encode(tok, c):
    kw = dict(return_offsets_mapping=True, return_token_type_ids=True)
    if c.get("max_length"):
        kw.update(truncation="longest_first", max_length=c["max_length"])
    if c["kind"] == "words":
        e = tok(c["words"], is_split_into_words=True, **kw)
    elif c["kind"] == "pair":
        e = tok(c["text"], c["pair"], **kw)
    else:
        e = tok(c["text"], **kw)
    return {
        "ids": e["input_ids"],
        "tokens": tok.convert_ids_to_tokens(e["input_ids"]),
        "offsets": [list(o) for o in e["offset_mapping"]],
        "type_ids": e["token_type_ids"],
        "word_ids": [-1 if w is None else w for w in e.word_ids()],
    }


def main():
    all_cases = cases()
    for model, family in MODELS.items():
        d = os.path.join(OUT, model)
        tok = AutoTokenizer.from_pretrained(model, use_fast=True)
        tok.save_pretrained(d)
        # transformers insists on add_prefix_space=True for pre-split input to RoBERTa.
        words_tok = AutoTokenizer.from_pretrained(model, use_fast=True, add_prefix_space=True) if family == "roberta" else tok
        lines = []
        for c in all_cases:
            if c["kind"] == "words":
                lines.append({"tokenizer": model, **c, **encode(words_tok, c)})
            else:
                lines.append({"tokenizer": model, **c, **encode(tok, c)})
        with gzip.open(os.path.join(d, "reference.jsonl.gz"), "wt", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        print(model, len(lines), "cases ->", d)


if __name__ == "__main__":
    main()
