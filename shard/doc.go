// Package shard streams training records out of dataset files, in every format
// the trainer reads, and addresses each record so that reading can resume at it
// or read it again from its bytes alone.
//
// Formats: csv, tsv, jsonl, labeltext (TREC "label text", SMS spam
// "label<TAB>text"), conll (token and tag columns, sentences separated by blank
// or -DOCSTART- lines) and squad (SQuAD v1.1 and v2.0 JSON); parquet is a format name
// only, of files that package dataset converts to jsonl (or squad) before they are
// read. A Spec names the format, its columns or fields and the text encoding; every
// format yields the same Record type. OpenFile reads a file, OpenReaderAt reads one through an
// io.ReaderAt (package stream hashes the bytes as it plans them).
//
// Addressing. Each record has a Pos: its file and the byte offset of its frame,
// the bytes it was parsed from. A frame is one line, one CSV record (quoted
// fields may hold newlines), one CoNLL sentence, or one SQuAD paragraph object;
// a paragraph frame holds one record per question, told apart by Pos.Index.
// Reading can start at any frame offset without reading what comes before it
// (a CSV header is read separately when needed). A Reader's Pos is its resume
// point: OpenAt at that Pos yields exactly the records not yet returned.
// OpenBytes reads records from the bytes of their frames alone, given the
// file's head (byte order mark, CSV header) and the first record's Pos: package
// stream plans blocks of records as byte ranges [Pos.Offset, FrameEnd) and its
// nodes read each block so.
//
// Bad records (a missing column, a label of the wrong type, bytes invalid in the
// encoding, ...) are an *Error naming file, line and field. With
// Spec.SkipBadRecords they are skipped instead, and counted in Bad; a reader
// resumed at a Pos counts only the bad records after it.
//
// Order is the seeded permutation package stream shuffles blocks and records
// with: a function of (n, seed, epoch, stream) alone, fixed across Go versions.
package shard
