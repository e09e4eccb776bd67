package hf

// mpnet is MPNet (Song et al. 2020, "MPNet: Masked and Permuted Pre-training for
// Language Understanding"): BERT's post-LayerNorm layers whose attention scores add a
// learned bias per head for the bucketed relative distance of the two tokens (T5's
// buckets), positions counted as RoBERTa's from the padding index + 1, no token types.
// transformers' modeling code fixes that padding index at 1, whatever pad_token_id says.
var mpnet = &family{
	modelType: "mpnet", arch: "MPNet", offsetPositions: true, embedPad: mpnetPad,
	noBERT: []string{"type_vocab_size", "position_embedding_type"},
	extra: []configField{
		{"relative_attention_num_buckets", func(c *BertConfig) any { return &c.RelativeAttentionNumBuckets }},
	},
	// transformers' MPNetConfig() with no arguments.
	defaults: func(c *BertConfig) {
		c.VocabSize, c.PadTokenID, c.TypeVocabSize, c.RelativeAttentionNumBuckets = 30527, 1, 0, MPNetBuckets
	},
	check: func(c *BertConfig) error {
		switch {
		case c.RelativeAttentionNumBuckets < MPNetBuckets || c.RelativeAttentionNumBuckets > 1<<16:
			// The embedding has this many rows, but MPNetEncoder always buckets into 32.
			return fieldErr("relative_attention_num_buckets", "want %d to %d (transformers buckets the distances into %d whatever the table holds), got %d",
				MPNetBuckets, 1<<16, MPNetBuckets, c.RelativeAttentionNumBuckets)
		case c.MaxPositionEmbeddings <= mpnetPad+1:
			return fieldErr("max_position_embeddings", "%d leaves no position after the offset %d (MPNet's padding index %d + 1)", c.MaxPositionEmbeddings, mpnetPad+1, mpnetPad)
		}
		return nil
	},
}

// mpnetPad is MPNetEmbeddings.padding_idx.
const mpnetPad = 1

// MPNetBuckets is the number of buckets MPNet's relative distances fall into:
// MPNetEncoder.compute_position_bias's default, which its forward never overrides.
const MPNetBuckets = 32
