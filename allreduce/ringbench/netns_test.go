package ringbench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/allreduce"
	"github.com/bertnode/bertnode/internal/netlab"
)

// TestRunNetNSLinkRate runs the ranks in network namespaces over 200 Mbit/s links,
// with the raw TCP baseline: the bytes on the wire never go faster than the link (up
// to the token bucket's burst), and the namespaces are gone afterwards.
func TestRunNetNSLinkRate(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Skip(err)
	}
	var out bytes.Buffer
	o := Options{Ranks: 3, Sizes: []int64{3 << 20}, Codecs: []allreduce.Codec{allreduce.CodecNone, allreduce.CodecBF16},
		Data: "random", Iters: 2, Warmup: 1, Seed: 1, NetNS: true, LinkRate: 200 * netlab.Mbit, RawTCP: true}
	res, err := Run(context.Background(), o, []string{os.Args[0], "-test.run=^$"}, &out)
	if err != nil {
		t.Fatal(err, out.String())
	}
	t.Log("\n" + out.String())
	if len(res) != 3 || res[0].Codec != "raw-tcp" || res[1].Codec != "none" || res[2].Codec != "bf16" {
		t.Fatalf("rows %+v, want raw-tcp, none, bf16", res)
	}
	if res[1].Transport != "tcp" || !strings.Contains(res[1].TransportNote, "another network namespace") {
		t.Errorf("codec none in namespaces: transport %s (%q), want tcp, declined for the namespaces",
			res[1].Transport, res[1].TransportNote)
	}
	if res[0].WirePerRank != 4<<20 {
		t.Errorf("raw tcp sent %d bytes a rank, want codec none's 4 MiB", res[0].WirePerRank)
	}
	for _, r := range res {
		// 4 MiB a rank per operation (2(n-1)/n of 3 MiB, half with bf16) at 25 MB/s, plus
		// at most one 128 KiB burst
		if r.Link != "200mbit" || r.LinkGBps != 0.025 || r.LinkUse <= 0 || r.LinkUse > 1.1 {
			t.Errorf("%s: link %q at %g GB/s, used %.1f%%", r.Codec, r.Link, r.LinkGBps, 100*r.LinkUse)
		}
	}
	if !strings.Contains(out.String(), "200mbit") {
		t.Errorf("table does not show the link:\n%s", out.String())
	}
	list, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(list), "-rank0") {
		t.Errorf("namespaces left behind:\n%s", list)
	}
}
