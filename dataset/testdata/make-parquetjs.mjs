// Writes sst2-parquetjs.parquet with @dsnp/parquetjs, another implementation than
// the parquet-go that bertnode reads with: SST-2-like rows (label a ClassLabel in the
// huggingface metadata, a null sentence), CoNLL-like bare repeated columns, snappy
// pages, two rows per row group.
//
//	npm install --ignore-scripts @dsnp/parquetjs@1.8.8 && node make-parquetjs.mjs sst2-parquetjs.parquet
import parquet from '@dsnp/parquetjs';

const out = process.argv[2] ?? 'sst2-parquetjs.parquet';
const schema = new parquet.ParquetSchema({
  idx: { type: 'INT32' },
  sentence: { type: 'UTF8', optional: true, compression: 'SNAPPY' },
  label: { type: 'INT64', compression: 'SNAPPY' },
  tokens: { type: 'UTF8', repeated: true, compression: 'SNAPPY' },
  ner_tags: { type: 'INT64', repeated: true, compression: 'SNAPPY' },
});
const meta = { info: { features: {
  idx: { dtype: 'int32', _type: 'Value' },
  sentence: { dtype: 'string', _type: 'Value' },
  label: { names: ['negative', 'positive'], _type: 'ClassLabel' },
  tokens: { feature: { dtype: 'string', _type: 'Value' }, _type: 'Sequence' },
  ner_tags: { feature: { names: ['O', 'B-PER', 'I-PER'], _type: 'ClassLabel' }, _type: 'Sequence' },
} } };
const rows = [
  { idx: 0, sentence: 'it is a charming and often affecting journey', label: 1n, tokens: ['Ann', 'smiled'], ner_tags: [1n, 0n] },
  { idx: 1, sentence: 'unflinchingly bleak and desperate', label: 0n, tokens: [], ner_tags: [] },
  { idx: 2, label: 1n, tokens: ['Mary', 'Ann', 'Lee'], ner_tags: [1n, 2n, 2n] },
  { idx: 3, sentence: 'naïve but “lovely”', label: 1n, tokens: ['ok'], ner_tags: [0n] },
  { idx: 4, sentence: 'the acting is n\'t bad', label: 0n, tokens: ['Bob'], ner_tags: [1n] },
];
const w = await parquet.ParquetWriter.openFile(schema, out);
w.setMetadata('huggingface', JSON.stringify(meta));
w.setRowGroupSize(2);
for (const r of rows) await w.appendRow(r);
await w.close();
