// Package tokenize turns raw text into BERT model inputs: WordPiece tokenization
// that matches Hugging Face's BertTokenizerFast (ids and rune offsets), the
// task-specific encodings built on it (single text, text pair, pre-split words
// with NER labels, SQuAD-style question answering with a sliding window), and
// collation of encodings into flat int64 batches ready for a tensor.
//
// Offsets everywhere count runes (Unicode code points), the unit SQuAD's
// answer_start and Python string indices use, never bytes.
//
// The tokenizer is its own implementation; github.com/sugarme/tokenizer is kept
// as the reference it is tested against (see reference_test.go) because its
// pipeline allocates over 1,500 times per sentence and its offsets drift on
// multi-byte text.
package tokenize
