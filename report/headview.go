package report

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

//go:embed headview.html
var headViewPage string

const dataMarker = "/*DATA*/"

// HeadView writes a self-contained HTML page (inline CSS and JS, no network)
// that shows the attention of one input like bertviz's head view: the tokens
// on both sides, a line from token i to token j per head whose opacity is the
// weight, a layer selector and per-head colour toggles. attn is indexed
// [layer][head][from][to] over len(tokens) tokens. Weights are stored with
// three decimals; the page grows with layers x heads x tokens^2.
func HeadView(w io.Writer, tokens []string, attn [][][][]float32) error {
	n := len(tokens)
	if n == 0 {
		return fmt.Errorf("report: head view needs at least one token")
	}
	if len(attn) == 0 || len(attn[0]) == 0 {
		return fmt.Errorf("report: head view needs at least one layer and one head")
	}
	heads := len(attn[0])
	tokJSON, err := json.Marshal(tokens) // escapes <, > and &: safe inside <script>
	if err != nil {
		return err
	}
	var b strings.Builder
	b.Grow(len(tokJSON) + len(attn)*heads*n*n*6 + 32)
	b.WriteString(`{"tokens":`)
	b.Write(tokJSON)
	b.WriteString(`,"attn":[`)
	var num []byte
	for l, layer := range attn {
		if len(layer) != heads {
			return fmt.Errorf("report: attention layer %d has %d heads, layer 0 has %d", l, len(layer), heads)
		}
		if l > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for h, head := range layer {
			if len(head) != n {
				return fmt.Errorf("report: attention layer %d head %d has %d rows for %d tokens", l, h, len(head), n)
			}
			if h > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('[')
			for i, row := range head {
				if len(row) != n {
					return fmt.Errorf("report: attention layer %d head %d row %d has %d weights for %d tokens", l, h, i, len(row), n)
				}
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteByte('[')
				for j, v := range row {
					f := float64(v)
					if math.IsNaN(f) || math.IsInf(f, 0) {
						return fmt.Errorf("report: attention layer %d head %d [%d][%d] is %v", l, h, i, j, v)
					}
					if j > 0 {
						b.WriteByte(',')
					}
					num = strconv.AppendFloat(num[:0], math.Round(f*1000)/1000, 'f', -1, 64)
					b.Write(num)
				}
				b.WriteByte(']')
			}
			b.WriteByte(']')
		}
		b.WriteByte(']')
	}
	b.WriteString("]}")
	before, after, _ := strings.Cut(headViewPage, dataMarker)
	for _, s := range []string{before, b.String(), after} {
		if _, err := io.WriteString(w, s); err != nil {
			return err
		}
	}
	return nil
}
