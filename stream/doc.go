// Package stream plans a dataset file for data-parallel training and serves its
// records to the nodes: the plan (Build), the elastic-deterministic sample order
// (Order, Batch, Piece) and record sources over a shared path (OpenFile) or HTTP
// (NewRemote, Handler).
//
// # The plan
//
// Build scans a file once in constant memory (package shard reads every format) and
// numbers its good records 0..N-1 in file order, as `bertnode train` does; with the
// spec's skip_bad_records the bad ones get no number. Records with HeldOut(i,
// eval_split) form the evaluation split, exactly the records train holds out. Block b
// holds records [b*BlockRecords, min((b+1)*BlockRecords, N)), held-out ones included,
// and the byte range [Start, End) from its first record's frame to the end of its last
// one's: a block parses on its own, given the plan's Head (a byte order mark, a CSV
// header). A SQuAD paragraph may start one block and end the one before. The plan
// keeps a CRC-32C of each block, so a reader verifies every block it reads against
// the plan made at the scan, and the file's size and SHA-256.
//
// # The order
//
// The training records of epoch e, for a seed and a window of W blocks, come in this
// order (B blocks, Perm(n, s) = shard.Order(n, uint64(seed), e, s), a permutation of
// 0..n-1 that depends on nothing else, fixed across Go versions):
//
//  1. The blocks are permuted: P = Perm(B, -1); position j holds block P[j].
//  2. Window w is the blocks at positions [w*W, min((w+1)*W, B)). Its list L_w is the
//     training record IDs of block P[w*W], ascending, then those of block P[w*W+1],
//     and so on.
//  3. The window's records are permuted: Q = Perm(len(L_w), w); the window contributes
//     L_w[Q[0]], L_w[Q[1]], ...
//  4. The epoch's order is window 0's records, then window 1's, and so on.
//
// This is MosaicML Streaming's py1b shuffle with one canonical node: a block permutation
// keeps reads sequential within blocks, the window mixes records across W blocks, and
// a node needs only the window's blocks at a time. Nothing in it depends on the number
// of nodes: global batch k of an epoch is Batch(order, pos, B), the next B records from
// position pos (the last batch of an epoch may be short), and the N ranks of a
// generation train Piece(batch, N, rank), contiguous cuts whose sizes differ by at most
// one. (epoch, pos) is an exact resume point for any N. Epoch computes the same order
// a window at a time, holding O(blocks) memory instead of O(records).
package stream
