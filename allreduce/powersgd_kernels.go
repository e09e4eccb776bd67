package allreduce

// PowerSGD's products, per bucket. m is the bucket folded to rows x cols (the last row
// may be short), p is rows x rk, and qt and qlt hold Q and Q_local transposed: rows of
// cols values, rk rounded up to a multiple of 4 of them (what the padding rows hold is
// never used). So every product reads m along its rows, four of Q's columns at a time,
// and the vector loops (powersgd_amd64.s) take 8 or 16 columns of m at once.
//
// Only the output must be the same bits on every rank, whichever loops each runs:
// reconstruct's vector and scalar loops compute it alike (each sum from zero, in rank
// order, every product rounded). project's and backProject's sums go through the ring
// before anyone uses them, so their order (fused multiply-adds in 8 lanes, or not) may
// differ between ranks.

// rk4 is rk rounded up to a multiple of 4.
func rk4(rk int) int { return (rk + 3) &^ 3 }

// transpose sets qt (rk4(rk) x cols) to the transpose of q (cols x rk), or, with back,
// q to the transpose of qt.
func transpose(q, qt []float32, cols, rk int, back bool) {
	for k := 0; k < cols; k++ {
		for j := 0; j < rk; j++ {
			if back {
				q[k*rk+j] = qt[j*cols+k]
			} else {
				qt[j*cols+k] = q[k*rk+j]
			}
		}
	}
}

// project adds mem to m, then sets p = M Q.
func project(m, mem, qt, p []float32, cols, rk int) {
	for i, lo := 0, 0; lo < len(m); i, lo = i+1, lo+cols {
		row, rowMem := m[lo:min(lo+cols, len(m))], mem[lo:min(lo+cols, len(m))]
		for j0 := 0; j0 < rk; j0 += 4 {
			var out [4]float32
			var add []float32 // the first group of columns adds mem as it goes
			if j0 == 0 {
				add = rowMem
			}
			q := qt[j0*cols : (j0+4)*cols]
			k := dot4Vector(row, add, q, cols, &out)
			for ; k < len(row); k++ {
				if j0 == 0 {
					row[k] += rowMem[k]
				}
				v := row[k]
				out[0] += v * q[k]
				out[1] += v * q[cols+k]
				out[2] += v * q[2*cols+k]
				out[3] += v * q[3*cols+k]
			}
			copy(p[i*rk+j0:(i+1)*rk], out[:])
		}
	}
}

// backProject sets qlt to (Mᵀ P)ᵀ.
func backProject(m, p, qlt []float32, cols, rk int) {
	clear(qlt)
	for i, lo := 0, 0; lo < len(m); i, lo = i+1, lo+cols {
		row := m[lo:min(lo+cols, len(m))]
		for j0 := 0; j0 < rk; j0 += 4 {
			var a [4]float32
			copy(a[:], p[i*rk+j0:(i+1)*rk])
			y := qlt[j0*cols : (j0+4)*cols]
			for k := axpy4Vector(y, cols, row, &a); k < len(row); k++ {
				v := row[k]
				y[k] += a[0] * v
				y[cols+k] += a[1] * v
				y[2*cols+k] += a[2] * v
				y[3*cols+k] += a[3] * v
			}
		}
	}
}

// reconstruct sets m = P Qᵀ · scale, and mem = M - P Qᵀ · inv: what this rank's M
// lost against the average (inv is 1/n), as torch's PowerSGD hook keeps it. The
// memories of all ranks add up to Σ M - P Qᵀ, what the output missed, which is all
// error feedback needs, and P Qᵀ is computed once for both.
func reconstruct(m, mem, p, qt []float32, cols, rk int, inv, scale float32) {
	for i, lo := 0, 0; lo < len(m); i, lo = i+1, lo+cols {
		row, rowMem := m[lo:min(lo+cols, len(m))], mem[lo:min(lo+cols, len(m))]
		pi := p[i*rk : (i+1)*rk]
		for k := reconstructVector(row, rowMem, pi, qt, cols, inv, scale); k < len(row); k++ {
			var sum float32
			for j, pv := range pi {
				// float32(): a compiler that fuses multiply-adds (arm64) must not here
				sum += float32(pv * qt[j*cols+k])
			}
			rowMem[k] = row[k] - float32(sum*inv)
			row[k] = sum * scale
		}
	}
}
