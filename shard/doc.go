// Package shard streams training records out of dataset files and splits those
// files into shards that data-parallel nodes read independently.
//
// Formats: csv, tsv, jsonl, labeltext (TREC "label text", SMS spam
// "label<TAB>text"), conll (token and tag columns, sentences separated by blank
// or -DOCSTART- lines) and squad (SQuAD v1.1 and v2.0 JSON). A Spec names the
// format, its columns or fields and the text encoding; every format yields the
// same Record type.
//
// Addressing. Each record has a Pos: its file and the byte offset of its frame,
// the bytes it was parsed from. A frame is one line, one CSV record (quoted
// fields may hold newlines), one CoNLL sentence, or one SQuAD paragraph object;
// a paragraph frame holds one record per question, told apart by Pos.Index.
// Reading can start at any frame offset without reading what comes before it
// (a CSV header is read separately when needed).
//
// Shards. Split scans a file once, in constant memory, and cuts it into K
// record-aligned byte ranges of about equal size. A record belongs to the shard
// whose [Start, End) holds its frame offset, so shards partition the records
// exactly. A Reader's Pos is its resume point: opening the shard again at that
// Pos yields exactly the records not yet returned.
//
// Bad records (a missing column, a label of the wrong type, bytes invalid in the
// encoding, ...) are an *Error naming file, line and field. With
// Spec.SkipBadRecords they are skipped instead, and counted in Bad.
//
// Shuffling. An Index lists a shard's records for random access; Order gives
// the seeded permutation an epoch uses, so (epoch, shard, position in order)
// is an exact resume point.
package shard
