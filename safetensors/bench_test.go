package safetensors

import (
	"fmt"
	"path/filepath"
	"testing"
)

// bertTensors has the names and shapes of a Hugging Face BertModel with
// hidden size h, l layers and intermediate size i (the "tiny" preset when
// called with 128, 2, 512), with zeroed F32 data.
func bertTensors(h, l, i int64) []Tensor {
	shapes := map[string][]int64{
		"bert.embeddings.word_embeddings.weight":       {30522, h},
		"bert.embeddings.position_embeddings.weight":   {512, h},
		"bert.embeddings.token_type_embeddings.weight": {2, h},
		"bert.embeddings.LayerNorm.weight":             {h},
		"bert.embeddings.LayerNorm.bias":               {h},
		"bert.pooler.dense.weight":                     {h, h},
		"bert.pooler.dense.bias":                       {h},
	}
	for n := range l {
		p := fmt.Sprintf("bert.encoder.layer.%d.", n)
		for _, m := range []string{"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"} {
			shapes[p+m+".weight"], shapes[p+m+".bias"] = []int64{h, h}, []int64{h}
		}
		shapes[p+"intermediate.dense.weight"], shapes[p+"intermediate.dense.bias"] = []int64{i, h}, []int64{i}
		shapes[p+"output.dense.weight"], shapes[p+"output.dense.bias"] = []int64{h, i}, []int64{h}
		for _, m := range []string{"attention.output.LayerNorm", "output.LayerNorm"} {
			shapes[p+m+".weight"], shapes[p+m+".bias"] = []int64{h}, []int64{h}
		}
	}
	var ts []Tensor
	for name, shape := range shapes {
		size, _ := byteSize(F32, shape)
		ts = append(ts, tensor(name, F32, shape, make([]byte, size)))
	}
	return ts
}

func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "tiny.safetensors")
	if err := Save(path, bertTensors(128, 2, 512), map[string]string{"format": "pt"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func BenchmarkSave(b *testing.B) {
	ts := bertTensors(128, 2, 512)
	var size int64
	for _, t := range ts {
		size += int64(len(t.Data))
	}
	path := filepath.Join(b.TempDir(), "tiny.safetensors")
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if err := Save(path, ts, map[string]string{"format": "pt"}); err != nil {
			b.Fatal(err)
		}
	}
}
