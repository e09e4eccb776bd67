package tokenize

import (
	"testing"
)

// Throughput on real sentences: go test -bench . -benchmem ./tokenize/

func BenchmarkEncodeSST2(b *testing.B) {
	tk := bert(b, true)
	texts := sst2Sentences(b, "dev.tsv")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tk.Encode(texts[i%len(texts)], 128); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sentences/s")
}

// BenchmarkEncodeSST2Algorithms encodes the same SST-2 sentences with WordPiece
// (bert-base-uncased), byte-level BPE (testdata/roberta-tiny) and Unigram
// (testdata/albert-tiny), side by side: the goal is BPE and Unigram within 3x of
// WordPiece. The BPE and Unigram vocabularies are small (2,000 merges / pieces),
// which makes words split into more pieces than with RoBERTa's or ALBERT's own.
func BenchmarkEncodeSST2Algorithms(b *testing.B) {
	texts := sst2Sentences(b, "dev.tsv")
	roberta, err := Load("testdata/roberta-tiny")
	if err != nil {
		b.Fatal(err)
	}
	albert, err := Load("testdata/albert-tiny")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		tk   *Tokenizer
	}{{"WordPiece", bert(b, true)}, {"BPE", roberta}, {"Unigram", albert}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := c.tk.Encode(texts[i%len(texts)], 128); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sentences/s")
		})
	}
}

func BenchmarkEncodeSST2Reference(b *testing.B) {
	ref := reference(b, true)
	texts := sst2Sentences(b, "dev.tsv")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ref.EncodeSingle(texts[i%len(texts)], true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sentences/s")
}

func BenchmarkEncodeSQuADContext(b *testing.B) {
	tk := bert(b, true)
	texts := squadContexts(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tk.Encode(texts[i%len(texts)], 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "paragraphs/s")
}

func BenchmarkEncodeQA(b *testing.B) {
	tk := bert(b, true)
	examples := squadDev(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tk.EncodeQA(examples[i%len(examples):i%len(examples)+1], 384, 128); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "examples/s")
}

func BenchmarkCollate32(b *testing.B) {
	tk := bert(b, true)
	encs := sst2Encodings(b, tk, 32)
	c, err := NewCollator(PadLongest, 128, tk.PadID())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Collate(encs); err != nil {
			b.Fatal(err)
		}
	}
}
