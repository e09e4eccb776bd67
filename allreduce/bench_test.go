package allreduce

import (
	"fmt"
	"testing"
)

// BenchmarkAllReduce runs every rank in this process over loopback TCP, so the ranks
// share the CPUs the way co-located processes would. b.SetBytes is the buffer size:
// MB/s is algbw; busbw is algbw*2(n-1)/n.
func BenchmarkAllReduce(b *testing.B) {
	for _, n := range []int{2, 4} {
		for _, mib := range []int{16, 64} {
			b.Run(fmt.Sprintf("n%d_%dMiB", n, mib), func(b *testing.B) {
				rings := tcpRings(b, n, nil)
				bufs := make([][]float32, n)
				for i := range bufs {
					bufs[i] = make([]float32, mib<<18)
					for j := range bufs[i] {
						bufs[i][j] = float32(j%1000) / 1000
					}
				}
				b.SetBytes(int64(mib) << 20)
				b.ResetTimer()
				for b.Loop() {
					mustReduce(b, rings, bufs, OpAvg)
				}
				s := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(float64(mib<<20)/s/1e9*2*float64(n-1)/float64(n), "busbw_GB/s")
			})
		}
	}
}
