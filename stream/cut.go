package stream

// Batch is the global batch that starts at pos in an epoch's order: the next size IDs,
// fewer at the epoch's end.
func Batch(order []int32, pos, size int) []int32 {
	pos = min(max(pos, 0), len(order))
	return order[pos:min(pos+size, len(order))]
}

// Piece is rank's contiguous part of batch among n ranks: sizes differ by at most one,
// the larger pieces first, and the pieces in rank order make up the batch.
func Piece(batch []int32, n, rank int) []int32 {
	q, r := len(batch)/n, len(batch)%n
	lo := rank*q + min(rank, r)
	hi := lo + q
	if rank < r {
		hi++
	}
	return batch[lo:hi]
}
