// Trains the fixtures' tiny WordPiece vocabulary with Hugging Face tokenizers' own
// trainer (the Rust library through its Node binding, npm `tokenizers`), for
// make_fixtures.py --npm-tokenizers where the Python binding is not installed; the
// byte-level BPE comes from tokenize/testdata/reference.js train-bpe.
//   node train_vocab.js CORPUS_TXT OUT_DIR SIZE    writes OUT_DIR/vocab.txt
const t = require('tokenizers')
const fs = require('fs')
const path = require('path')

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']

function main() {
  const [corpus, outDir, size] = process.argv.slice(2)
  const tk = new t.Tokenizer(t.WordPiece.empty())
  tk.setNormalizer(t.bertNormalizer({ lowercase: true }))
  tk.setPreTokenizer(t.bertPreTokenizer())
  tk.train([corpus])
  // The trainer orders its vocabulary alphabet first, then merges in the order learned,
  // so a prefix of it is what a trainer stopped at that size learns (as
  // BertWordPieceTokenizer.train with vocab_size does, specials first).
  const trained = Object.entries(tk.getVocab(false)).sort((a, b) => a[1] - b[1]).map(([tok]) => tok)
  const vocab = SPECIALS.concat(trained.filter((tok) => !SPECIALS.includes(tok))).slice(0, Number(size))
  fs.writeFileSync(path.join(outDir, 'vocab.txt'), vocab.join('\n') + '\n')
}

main()
