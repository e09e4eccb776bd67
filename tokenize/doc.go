// Package tokenize turns raw text into model inputs: tokenization that matches Hugging
// Face's fast tokenizers (ids and rune offsets) for BERT's WordPiece, RoBERTa's
// byte-level BPE and ALBERT's Unigram (SentencePiece), the task-specific encodings
// built on it (single text, text pair, pre-split words with NER labels, SQuAD-style
// question answering with a sliding window), and collation of encodings into flat
// int64 batches ready for a tensor.
//
// Offsets everywhere count runes (Unicode code points), the unit SQuAD's
// answer_start and Python string indices use, never bytes.
//
// Everything outside the package sees one Tokenizer; the algorithm behind it (a
// splitter) is chosen by Load from a model directory's files. WordPiece is one fused
// pass (split.go). BPE and Unigram run HF's pipeline (pipeline.go): added tokens,
// normalizers that keep HF's offset alignments (normalized.go), the ByteLevel or
// Metaspace pre-tokenizer, the model, and the post-processor's template.
//
// The tokenizers are our own implementations. WordPiece is tested against
// github.com/sugarme/tokenizer (reference_test.go), kept as a reference because its
// pipeline allocates over 1,500 times per sentence and its offsets drift on
// multi-byte text; BPE and Unigram against Hugging Face tokenizers itself and
// SentencePiece's spm_encode (hf_reference_test.go, testdata/make_testdata.py).
package tokenize
