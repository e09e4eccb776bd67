package stream

import "strconv"

// HeldOut says whether record i (numbered in file order from 0) belongs to the
// evaluation split that holds out a fraction frac of the records: FNV-1a (64-bit) of
// i's decimal digits, mod 10^6, below frac*10^6. A hash of the index, so the split does
// not depend on the file's order of classes. `bertnode train` and the cluster's plans
// share this one definition.
func HeldOut(i int, frac float64) bool {
	const offset, prime = 14695981039346656037, 1099511628211
	var buf [20]byte
	h := uint64(offset)
	for _, c := range strconv.AppendInt(buf[:0], int64(i), 10) {
		h ^= uint64(c)
		h *= prime
	}
	return float64(h%1_000_000) < frac*1_000_000
}
