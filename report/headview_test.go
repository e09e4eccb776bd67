package report

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// testAttention builds [layer][head][from][to] weights where each row puts
// 0.7 on one token and 0.3 on the first.
func testAttention(layers, heads, n int) [][][][]float32 {
	a := make([][][][]float32, layers)
	for l := range a {
		a[l] = make([][][]float32, heads)
		for h := range a[l] {
			a[l][h] = make([][]float32, n)
			for i := range n {
				a[l][h][i] = make([]float32, n)
				a[l][h][i][(i+h+l)%n] += 0.7
				a[l][h][i][0] += 0.3 + float32(l)*1e-5 // below the stored precision
			}
		}
	}
	return a
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func TestHeadViewIsSelfContainedAndCarriesTheData(t *testing.T) {
	tokens := []string{"[CLS]", "the", "cat", "</script><script>alert(1)</script>", "sat", "&amp;", "[SEP]"}
	attn := testAttention(3, 4, len(tokens))
	var buf bytes.Buffer
	if err := HeadView(&buf, tokens, attn); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var dataJSON string
	var scripts, canvases int
	var layerSelect *html.Node
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		for _, a := range n.Attr {
			if a.Key == "src" || a.Key == "href" {
				t.Errorf("<%s %s=%q> loads an external resource", n.Data, a.Key, a.Val)
			}
		}
		switch n.Data {
		case "link", "img", "iframe", "object", "embed":
			t.Errorf("page contains <%s>", n.Data)
		case "script":
			scripts++
			if attr(n, "id") == "attention-data" {
				dataJSON = n.FirstChild.Data
			}
		case "select":
			layerSelect = n
		case "canvas":
			canvases++
		}
	})
	// The token holding </script> must not open or close any script.
	if scripts != 2 || canvases != 1 || layerSelect == nil {
		t.Fatalf("page has %d scripts, %d canvases, layer select %v; want 2, 1, present", scripts, canvases, layerSelect != nil)
	}
	if strings.Contains(buf.String(), "http://") || strings.Contains(buf.String(), "https://") {
		t.Error("page mentions a URL")
	}

	var data struct {
		Tokens []string
		Attn   [][][][]float64
	}
	if err := json.Unmarshal([]byte(dataJSON), &data); err != nil {
		t.Fatalf("embedded data is not JSON: %v", err)
	}
	if !slices.Equal(data.Tokens, tokens) {
		t.Errorf("tokens %q, want %q", data.Tokens, tokens)
	}
	if len(data.Attn) != 3 || len(data.Attn[2]) != 4 {
		t.Fatalf("attention shape %dx%d, want 3x4", len(data.Attn), len(data.Attn[0]))
	}
	for l := range attn {
		for h := range attn[l] {
			for i := range attn[l][h] {
				for j, v := range attn[l][h][i] {
					want := math.Round(float64(v)*1000) / 1000
					if got := data.Attn[l][h][i][j]; got != want {
						t.Fatalf("attn[%d][%d][%d][%d] = %v, want %v", l, h, i, j, got, want)
					}
				}
			}
		}
	}
	// Spot check: layer 1, head 2, row 3 puts 0.7 on token (3+2+1)%7 = 6.
	if got := data.Attn[1][2][3][6]; got != 0.7 {
		t.Errorf("attn[1][2][3][6] = %v, want 0.7", got)
	}
}

func TestHeadViewRejectsBadShapes(t *testing.T) {
	tokens := []string{"a", "b"}
	good := testAttention(2, 2, 2)
	for _, tc := range []struct {
		name string
		edit func(a [][][][]float32) [][][][]float32
		want string
	}{
		{"no layers", func([][][][]float32) [][][][]float32 { return nil }, "at least one layer"},
		{"ragged heads", func(a [][][][]float32) [][][][]float32 { a[1] = a[1][:1]; return a }, "layer 1 has 1 heads, layer 0 has 2"},
		{"rows", func(a [][][][]float32) [][][][]float32 { a[0][1] = a[0][1][:1]; return a }, "layer 0 head 1 has 1 rows for 2 tokens"},
		{"columns", func(a [][][][]float32) [][][][]float32 { a[1][0][1] = a[1][0][1][:1]; return a }, "layer 1 head 0 row 1 has 1 weights"},
		{"NaN", func(a [][][][]float32) [][][][]float32 { a[1][1][0][1] = float32(math.NaN()); return a }, "layer 1 head 1 [0][1] is NaN"},
	} {
		a := testAttention(2, 2, 2)
		err := HeadView(&bytes.Buffer{}, tokens, tc.edit(a))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := HeadView(&bytes.Buffer{}, nil, good); err == nil {
		t.Error("no tokens accepted")
	}
}

func BenchmarkHeadView(b *testing.B) {
	tokens := make([]string, 64)
	for i := range tokens {
		tokens[i] = "tok"
	}
	attn := testAttention(4, 12, 64)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := HeadView(&buf, tokens, attn); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
