#!/usr/bin/env python3
"""Makes the tiny tokenizers and the reference encodings the Go tests compare with.

Needs Debian's sentencepiece, python3-sentencepiece and python3-protobuf, node and the
npm package `tokenizers` (Hugging Face tokenizers' Rust library through its Node
binding; version printed into the output), ../../data and ../../../shared/data.

    cd tokenize/testdata && python3 make_testdata.py /path/to/node_modules

Writes:
  roberta-tiny/   vocab.json, merges.txt: byte-level BPE, 2,000 merges learned by HF's
                  BPE trainer on the SMS spam messages; tokenizer.json as HF saves it
                  (RobertaProcessing, <mask> with lstrip, add_prefix_space false)
  albert-tiny/    spiece.model: a 2,000-piece SentencePiece Unigram (nmt_nfkc rules)
                  trained by spm_train on the same messages, with ALBERT's specials;
                  tokenizer.json: what transformers' AlbertConverter makes of it
  mpnet/          vocab.txt laid out as MPNet's (microsoft/mpnet-base: <s> <pad> </s>
                  <unk>, bert-base-uncased's WordPiece vocabulary, <mask>),
                  tokenizer_config.json as MPNetTokenizer saves it, and tokenizer.json:
                  what transformers' MPNetConverter makes of them, saved by HF
  reference.jsonl.gz  HF's ids, tokens, offsets, type and word ids for held-out texts
                  (SST-2, WNUT-17 tweets, SQuAD paragraphs, TREC questions, edge cases)
  spm_encode.tsv  spm_encode's ids for SST-2 test sentences, with the raw SentencePiece
                  model (the check of the Unigram model and charsmap against Google's)
"""
import base64, gzip, json, os, subprocess, sys, tempfile, unicodedata

from sentencepiece import sentencepiece_model_pb2 as spm_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
SHARED = os.path.join(ROOT, "..", "shared", "data")
NODE_MODULES = sys.argv[1]


def node(*args):
    env = dict(os.environ, NODE_PATH=NODE_MODULES)
    subprocess.run(["node", os.path.join(HERE, "reference.js"), *args], check=True, env=env)


def sms_messages():
    with open(os.path.join(ROOT, "data", "sms_spam", "SMSSpamCollection"), encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t", 1)[1] for line in f if "\t" in line]


def sst2(name, n):
    with open(os.path.join(SHARED, "sst2", name), encoding="utf-8") as f:
        return [line.split("\t")[0] for line in f.read().splitlines()[1 : n + 1]]


def wnut_sentences(n):
    out, cur = [], []
    with open(os.path.join(SHARED, "wnut17", "emerging.test.annotated"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if cur:
                    out.append(cur)
                cur = []
                continue
            cur.append(line.split("\t")[0])
    return out[:n]


def squad_contexts(n_plain, n_unicode):
    with open(os.path.join(SHARED, "squad_v1.1", "dev-v1.1.json"), encoding="utf-8") as f:
        data = json.load(f)
    ctx = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    uni = [c for c in ctx if any(ord(ch) > 127 for ch in c)]
    return ctx[:n_plain] + uni[:n_unicode]


def trec(n):
    with open(os.path.join(SHARED, "trec", "test.txt"), encoding="latin-1") as f:
        return [line.rstrip("\n").split(" ", 1)[1] for line in f][:n]


EDGE = [
    "", " ", "Hello world", " Hello world", "Hello  world", "Hello   world!", "  leading and trailing  ",
    "tab\there\nnew line\r\nwindows line", "a\u00a0b\u2003c\u3000d", "don't I'll we've they're you'd she's 'quoted' 'S",
    "Héllo naïve café résumé Ångström", "nai\u0308ve cafe\u0301", "İstanbul ǅ ß ΣΑΣ", "ﬁne ﬂow Ⅻ ² ½ ＡＢＣ１２３",
    "我爱北京天安门", "東京は日本の首都です。", "한국어 텍스트", "Привет, мир!", "مرحبا بالعالم", "नमस्ते दुनिया",
    "I ❤️ NY 😀 👨‍👩‍👧 🇫🇷 👍🏽", "emoji😀glued😀text", "price: $1,000,000.50 or 3,5 €; 1, 2, 3,", "``double'' quotes ``",
    "soft\u00adhyphen zero\u200bwidth bom\ufeff ctrl\x01\x07char", "The <mask> sat on the mat.", "The<mask>sat <s>x</s> <pad><unk>",
    "[CLS] a [MASK] b [SEP]", "A [MASK] here and [MASK].", "hello\u2581world ▁x", "x" * 300, "a " * 120,
    "http://example.com/path?q=1&r=2 #hashtag @user", "...!!!???---___", "e.g. U.S.A. 3.14 10km 2nd",
    "\u0000nul", "combining ̀grave alone", "Ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ", "\U0001d54f\U0001d552\U0001d55e",
]


def main():
    work = tempfile.mkdtemp()
    train = os.path.join(work, "train.txt")
    with open(train, "w", encoding="utf-8") as f:
        f.write("\n".join(sms_messages()) + "\n")

    # Byte-level BPE, trained by HF's own trainer.
    rdir = os.path.join(HERE, "roberta-tiny")
    os.makedirs(rdir, exist_ok=True)
    node("train-bpe", train, rdir, "2000")
    with open(os.path.join(rdir, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    tj["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    with open(os.path.join(rdir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=2)
    aps = dict(tj)
    aps["pre_tokenizer"] = dict(tj["pre_tokenizer"], add_prefix_space=True)
    aps["post_processor"] = dict(tj["post_processor"], add_prefix_space=True)
    roberta_aps = os.path.join(work, "roberta-aps.json")
    with open(roberta_aps, "w", encoding="utf-8") as f:
        json.dump(aps, f, ensure_ascii=False)

    # SentencePiece Unigram with ALBERT's special pieces.
    adir = os.path.join(HERE, "albert-tiny")
    os.makedirs(adir, exist_ok=True)
    subprocess.run(["spm_train", f"--input={train}", f"--model_prefix={os.path.join(work, 'spiece')}",
                    "--model_type=unigram", "--vocab_size=2000", "--character_coverage=0.9995",
                    "--pad_id=0", "--unk_id=1", "--bos_id=-1", "--eos_id=-1",
                    "--control_symbols=[CLS],[SEP],[MASK]", "--seed_sentencepiece_size=100000",
                    "--num_threads=2", "--minloglevel=2"], check=True)
    os.replace(os.path.join(work, "spiece.model"), os.path.join(adir, "spiece.model"))
    proto = spm_pb2.ModelProto()
    with open(os.path.join(adir, "spiece.model"), "rb") as f:
        proto.ParseFromString(f.read())
    albert_json = os.path.join(work, "albert.json")
    with open(albert_json, "w", encoding="utf-8") as f:
        json.dump(albert_converter(proto), f, ensure_ascii=False)
    node("save", albert_json, os.path.join(adir, "tokenizer.json"))

    # MPNet: BERT's WordPiece with MPNet's specials and pair template.
    mdir = os.path.join(HERE, "mpnet")
    os.makedirs(mdir, exist_ok=True)
    with open(os.path.join(ROOT, "data", "vocab", "bert-base-uncased.vocab.txt"), encoding="utf-8") as f:
        mvocab = ["<s>", "<pad>", "</s>", "<unk>"] + f.read().splitlines() + ["<mask>"]
    with open(os.path.join(mdir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(mvocab) + "\n")
    with open(os.path.join(mdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(MPNET_CONFIG, f, indent=2)
    mpnet_json = os.path.join(work, "mpnet.json")
    with open(mpnet_json, "w", encoding="utf-8") as f:
        json.dump(mpnet_converter(mvocab), f, ensure_ascii=False)
    node("save", mpnet_json, os.path.join(mdir, "tokenizer.json"), "compact")

    # Held-out texts and cases.
    sentences = sst2("test.tsv", 150) + [" ".join(w) for w in wnut_sentences(150)] + trec(60)
    texts = EDGE + sentences + squad_contexts(8, 25)
    singles = [{"kind": "single", "text": s} for s in texts]
    pairs = [{"kind": "pair", "text": a, "pair": b} for a, b in zip(sentences[0:60:2], sentences[1:60:2])]
    pairs += [{"kind": "pair", "text": a, "pair": b} for a, b in zip(EDGE[:12], EDGE[12:24])]
    truncated = [{"kind": "single", "text": s, "max_length": 16} for s in texts[40:80]]
    truncated += [{"kind": "pair", "text": a, "pair": b, "max_length": 24} for a, b in zip(sentences[100:140:2], sentences[101:140:2])]
    words = [{"kind": "words", "words": w} for w in wnut_sentences(200)[150:200]]
    words += [{"kind": "words", "words": ["Héllo", "naïve", "😀", "New", "York", ",", "don't"]}]
    jobs = [
        {"name": "roberta", "tokenizer": os.path.join(rdir, "tokenizer.json"), "cases": singles + pairs + truncated},
        {"name": "roberta-aps", "tokenizer": roberta_aps, "cases": singles + words},
        {"name": "albert", "tokenizer": os.path.join(adir, "tokenizer.json"), "cases": singles + pairs + truncated + words},
        {"name": "mpnet", "tokenizer": os.path.join(mdir, "tokenizer.json"), "cases": singles + pairs + truncated + words},
    ]
    jobs_path = os.path.join(work, "jobs.json")
    with open(jobs_path, "w", encoding="utf-8") as f:
        json.dump(jobs, f, ensure_ascii=False)
    out = os.path.join(work, "reference.jsonl")
    node("encode", jobs_path, out)
    with open(out, "rb") as f, gzip.GzipFile(os.path.join(HERE, "reference.jsonl.gz"), "wb", mtime=0) as g:
        g.write(f.read())

    # spm_encode on the raw SentencePiece model.
    sst = sst2("test.tsv", 300)
    res = subprocess.run(["spm_encode", f"--model={os.path.join(adir, 'spiece.model')}", "--output_format=id"],
                         input="\n".join(sst) + "\n", capture_output=True, text=True, check=True)
    with open(os.path.join(HERE, "spm_encode.tsv"), "w", encoding="utf-8") as f:
        for s, ids in zip(sst, res.stdout.splitlines()):
            f.write(s + "\t" + ids + "\n")


def check_number_comma(piece):
    return len(piece) < 2 or piece[-1] != "," or not piece[-2].isdigit()


def albert_converter(proto):
    """transformers' AlbertConverter (do_lower_case=True, keep_accents=False)."""
    charsmap = base64.b64encode(proto.normalizer_spec.precompiled_charsmap).decode()
    normalizers = [
        {"type": "Replace", "pattern": {"String": "``"}, "content": '"'},
        {"type": "Replace", "pattern": {"String": "''"}, "content": '"'},
        {"type": "NFKD"}, {"type": "StripAccents"}, {"type": "Lowercase"},
        {"type": "Precompiled", "precompiled_charsmap": charsmap},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
    ]
    vocab = [[p.piece, p.score if check_number_comma(p.piece) else p.score - 100] for p in proto.pieces]
    ids = {p.piece: i for i, p in enumerate(proto.pieces)}
    added = {}
    for i, p in enumerate(proto.pieces):
        if p.type in (3, 4):
            added[i] = {"id": i, "content": p.piece, "single_word": False, "lstrip": False, "rstrip": False,
                        "normalized": False, "special": p.type == 3}
    for tok in ["<unk>", "[CLS]", "[SEP]", "<pad>", "[MASK]"]:
        i = ids[tok]
        added[i] = {"id": i, "content": tok, "single_word": False, "lstrip": tok == "[MASK]", "rstrip": False,
                    "normalized": False, "special": True}
    tmpl = lambda kind, i, t: {kind: {"id": i, "type_id": t}}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added[i] for i in sorted(added)],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [tmpl("SpecialToken", "[CLS]", 0), tmpl("Sequence", "A", 0), tmpl("SpecialToken", "[SEP]", 0)],
            "pair": [tmpl("SpecialToken", "[CLS]", 0), tmpl("Sequence", "A", 0), tmpl("SpecialToken", "[SEP]", 0),
                     tmpl("Sequence", "B", 1), tmpl("SpecialToken", "[SEP]", 1)],
            "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in ["[CLS]", "[SEP]"]},
        },
        "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": proto.trainer_spec.unk_id, "vocab": vocab, "byte_fallback": False},
    }


# MPNetTokenizer's defaults, as save_pretrained writes them.
MPNET_CONFIG = {
    "tokenizer_class": "MPNetTokenizer", "do_lower_case": True, "tokenize_chinese_chars": True,
    "strip_accents": None, "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
    "unk_token": "[UNK]", "pad_token": "<pad>",
    "mask_token": {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False,
                   "single_word": False, "special": True},
    "model_max_length": 512,
}


def mpnet_converter(vocab):
    """transformers' MPNetConverter on MPNetTokenizer with MPNET_CONFIG."""
    ids = {t: i for i, t in enumerate(vocab)}
    added = [{"id": ids[t], "content": t, "single_word": False, "lstrip": t == "<mask>", "rstrip": False,
              "normalized": False, "special": True} for t in ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]]
    tmpl = lambda kind, i, t: {kind: {"id": i, "type_id": t}}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": sorted(added, key=lambda a: a["id"]),
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [tmpl("SpecialToken", "<s>", 0), tmpl("Sequence", "A", 0), tmpl("SpecialToken", "</s>", 0)],
            "pair": [tmpl("SpecialToken", "<s>", 0), tmpl("Sequence", "A", 0), tmpl("SpecialToken", "</s>", 0),
                     tmpl("SpecialToken", "</s>", 0), tmpl("Sequence", "B", 1), tmpl("SpecialToken", "</s>", 1)],
            "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in ["<s>", "</s>"]},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": ids},
    }


if __name__ == "__main__":
    main()
