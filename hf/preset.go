package hf

import (
	"fmt"
	"slices"
	"strings"
)

// presets are the compact BERT sizes of Turc et al. (2019), "Well-Read
// Students Learn Better", plus bert-base: layers, hidden, heads, intermediate.
var presets = map[string][4]int{
	"tiny":  {2, 128, 2, 512},
	"mini":  {4, 256, 4, 1024},
	"small": {4, 512, 8, 2048},
	"base":  {12, 768, 12, 3072},
}

// PresetNames lists the names Preset accepts.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Preset returns the configuration of a named randomly initialised BERT:
// tiny, mini, small or base, each with the bert-base-uncased vocabulary
// (30522) and 512 positions.
func Preset(name string) (*BertConfig, error) {
	p, ok := presets[name]
	if !ok {
		return nil, fmt.Errorf("unknown model preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	c := DefaultConfig()
	c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize = p[0], p[1], p[2], p[3]
	return c, nil
}
