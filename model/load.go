package model

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/bertnode/bertnode/hf"
)

// Resolve finds a model's checkpoint directory, downloading a hub name into the cache
// (see hf.Options). A preset name (tiny, mini, small, base; roberta-tiny...: hf.Preset) gives "" and its config, unless
// a directory of that name exists.
func Resolve(nameOrDir string, hub hf.Options) (dir string, preset *hf.BertConfig, err error) {
	if cfg, err := hf.Preset(nameOrDir); err == nil {
		if _, statErr := os.Stat(nameOrDir); statErr != nil {
			return "", cfg, nil
		}
	}
	dir, err = hf.Resolve(nameOrDir, hub)
	return dir, nil, err
}

// Pretrained builds a model from a Hugging Face checkpoint: a local directory or a hub
// name such as bert-base-uncased (downloaded once into the cache; see hf.Options). A
// named random-init preset (tiny, mini, small, base, or another family's such as
// distilbert-tiny: see hf.Preset) builds a fresh model instead. The config's model_type
// picks the family: bert, distilbert, roberta, albert or electra.
func Pretrained(nameOrDir string, hub hf.Options, opts Options) (*Model, *LoadReport, error) {
	dir, preset, err := Resolve(nameOrDir, hub)
	if err != nil {
		return nil, nil, err
	}
	if preset != nil {
		m, err := New(preset, opts)
		return m, nil, err
	}
	cfg, err := hf.ReadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, nil, err
	}
	m, err := New(cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range []string{SafetensorsFile, PytorchFile} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil {
			rep, err := m.LoadWeights(path)
			return m, rep, err
		}
	}
	return nil, nil, fmt.Errorf("%s: no %s or %s", dir, SafetensorsFile, PytorchFile)
}

var nan = math.NaN()

// halfToFloat widens an IEEE half (or, with bf, a bfloat16) to float32.
func halfToFloat(h uint16, bf bool) float32 {
	if bf {
		return math.Float32frombits(uint32(h) << 16)
	}
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for frac&0x400 == 0 {
			frac <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (frac&0x3ff)<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}
