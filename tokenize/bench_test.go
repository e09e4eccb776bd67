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
