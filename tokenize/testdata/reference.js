// Encodes the test texts with Hugging Face tokenizers (the Rust library, through its
// Node binding `tokenizers` on npm) and trains the tiny byte-level BPE.
// Run by make_testdata.py; not used by the Go tests.
//   node reference.js train-bpe TRAIN_TXT OUT_DIR NUM_MERGES
//   node reference.js save TOKENIZER_JSON_IN TOKENIZER_JSON_OUT [compact]
//   node reference.js encode JOBS_JSON OUT_JSONL
const t = require('tokenizers')
const fs = require('fs')
const path = require('path')

async function main() {
  const [cmd, ...args] = process.argv.slice(2)
  if (cmd === 'train-bpe') {
    const [train, outDir, nMerges] = args
    const tk = new t.Tokenizer(t.BPE.empty())
    tk.setPreTokenizer(t.byteLevelPreTokenizer(false, true))
    tk.train([train])
    const tmp = path.join(outDir, 'trained.tmp.json')
    tk.save(tmp)
    const trained = JSON.parse(fs.readFileSync(tmp, 'utf8'))
    fs.unlinkSync(tmp)
    // RoBERTa's layout: specials first, then all 256 byte characters, then the merges'
    // tokens in merge order, <mask> last.
    const vocab = {}
    const add = (tok) => { if (!(tok in vocab)) vocab[tok] = Object.keys(vocab).length }
    for (const s of ['<s>', '<pad>', '</s>', '<unk>']) add(s)
    for (const c of t.byteLevelAlphabet().sort((a, b) => a.codePointAt(0) - b.codePointAt(0))) add(c)
    const merges = trained.model.merges.slice(0, Number(nMerges))
    for (const [a, b] of merges) add(a + b)
    add('<mask>')
    fs.writeFileSync(path.join(outDir, 'vocab.json'), JSON.stringify(vocab))
    fs.writeFileSync(path.join(outDir, 'merges.txt'), '#version: 0.2\n' + merges.map(([a, b]) => a + ' ' + b).join('\n') + '\n')
    const model = await t.BPE.fromFile(path.join(outDir, 'vocab.json'), path.join(outDir, 'merges.txt'), {})
    const tk2 = new t.Tokenizer(model)
    tk2.setPreTokenizer(t.byteLevelPreTokenizer(false, true))
    tk2.setPostProcessor(t.robertaProcessing(['</s>', vocab['</s>']], ['<s>', vocab['<s>']], true, false))
    tk2.addAddedTokens([
      new t.AddedToken('<s>', true), new t.AddedToken('<pad>', true), new t.AddedToken('</s>', true),
      new t.AddedToken('<unk>', true), new t.AddedToken('<mask>', true, { leftStrip: true }),
    ])
    tk2.save(path.join(outDir, 'tokenizer.json'), true)
  } else if (cmd === 'save') {
    const [src, dst, compact] = args
    t.Tokenizer.fromString(fs.readFileSync(src, 'utf8')).save(dst, compact !== 'compact')
  } else if (cmd === 'encode') {
    const [jobsPath, outPath] = args
    const jobs = JSON.parse(fs.readFileSync(jobsPath, 'utf8'))
    const out = []
    for (const job of jobs) {
      const tk = t.Tokenizer.fromString(fs.readFileSync(job.tokenizer, 'utf8'))
      for (const c of job.cases) {
        if (c.max_length) tk.setTruncation(c.max_length, { strategy: 'LongestFirst' })
        else tk.disableTruncation()
        if (c.words) {
          out.push(JSON.stringify({ tokenizer: job.name, ...c, ...(await splitIntoWords(tk, c.words)) }))
          continue
        }
        const e = await tk.encode(c.text, c.pair === undefined ? null : c.pair)
        out.push(JSON.stringify({
          tokenizer: job.name, ...c,
          ids: e.getIds(), tokens: e.getTokens(), offsets: e.getOffsets(), type_ids: e.getTypeIds(),
          word_ids: e.getWordIds().map((w) => (w === null || w === undefined ? -1 : w)),
        }))
      }
    }
    fs.writeFileSync(outPath, out.join('\n') + '\n')
  } else {
    throw new Error('unknown command ' + cmd)
  }
}
// The binding rejects pre-split input (isPretokenized), so this is what HF does with
// it: each word encoded on its own, its tokens given the word's index and offsets
// within the word, the single template's special tokens around them.
async function splitIntoWords(tk, words) {
  const r = { ids: [], tokens: [], offsets: [], type_ids: [], word_ids: [] }
  for (const [i, w] of words.entries()) {
    const e = await tk.encode(w, null, { addSpecialTokens: false })
    r.ids.push(...e.getIds())
    r.tokens.push(...e.getTokens())
    r.offsets.push(...e.getOffsets())
    r.type_ids.push(...e.getTypeIds())
    r.word_ids.push(...e.getIds().map(() => i))
  }
  const empty = await tk.encode('', null)
  const ids = empty.getIds()
  const tokens = empty.getTokens()
  r.ids = [ids[0], ...r.ids, ...ids.slice(1)]
  r.tokens = [tokens[0], ...r.tokens, ...tokens.slice(1)]
  r.offsets = [[0, 0], ...r.offsets, [0, 0]]
  r.type_ids = [0, ...r.type_ids, 0]
  r.word_ids = [-1, ...r.word_ids, -1]
  return r
}

main().catch((e) => { console.error(e); process.exit(1) })
