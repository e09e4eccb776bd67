package dataset

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/bertnode/bertnode/shard"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
)

// eachRow calls emit with each row of the Parquet file at path, in row order, as one
// line of JSON: an object of the columns as fields in schema order. name is the file
// in errors, which say which row and column is at fault; rows count from 0, as
// pandas numbers them.
//
// Values: strings as strings; integers and floats as numbers (NaN and ±Inf, which
// JSON has no number for, as null); booleans; null for nulls; lists as arrays; groups
// (structs) as objects; dates and timestamps as ISO 8601 strings; decimals as
// numbers; other binary values as base64 strings. An integer column that the file's
// Hugging Face metadata declares a ClassLabel, or a list of them, holds class names:
// its ids are mapped to them, and -1 (Hugging Face's "no label") to null.
func eachRow(name, path string, emit func(row int64, line []byte) error) (err error) {
	// parquet-go panics on some malformed files (slice bounds): an error, not a crash.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: not a readable Parquet file: %v", name, p)
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// The page index only helps skip pages, and parquetjs writes one parquet-go misreads.
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true))
	if err != nil {
		return fmt.Errorf("%s: not a readable Parquet file: %w", name, err)
	}
	names, err := classLabels(pf)
	if err != nil {
		return fmt.Errorf("%s: the huggingface metadata: %w", name, err)
	}
	root := pf.Schema()
	c := &converter{file: name, labels: make([][]string, len(root.Fields()))}
	for i, fl := range root.Fields() {
		c.labels[i] = names[fl.Name()]
	}
	rows := make([]parquet.Row, 64)
	cols := make([][]parquet.Value, 0, 16)
	for g, rg := range pf.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(rows)
			for _, row := range rows[:n] {
				cols = cols[:0]
				row.Range(func(_ int, vals []parquet.Value) bool {
					cols = append(cols, vals)
					return true
				})
				if err := c.row(root, cols); err != nil {
					rr.Close()
					return err
				}
				if err := emit(c.n, c.buf.Bytes()); err != nil {
					rr.Close()
					return err
				}
				c.n++
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return fmt.Errorf("%s: row group %d, at row %d: %w", name, g, c.n, err)
			}
		}
		if err := rr.Close(); err != nil {
			return fmt.Errorf("%s: row group %d: %w", name, g, err)
		}
	}
	return nil
}

// writeJSONL writes the rows of the Parquet file at path to w as JSON lines (eachRow).
func writeJSONL(w io.Writer, name, path string) error {
	return eachRow(name, path, func(_ int64, line []byte) error {
		_, err := w.Write(line)
		return err
	})
}

// squadHead and squadTail wrap the paragraphs of writeSQuAD into a SQuAD document.
const (
	squadHead = `{"version": "parquet", "data": [{"title": "", "paragraphs": [` + "\n"
	squadTail = "]}]}\n"
)

// writeSQuAD writes each row of the Parquet file at path, a question as the datasets
// library holds SQuAD's (id, context, question, answers: {text: [...], answer_start:
// [...]}), to w as a SQuAD paragraph of its own, one per line, each after a comma
// unless *first (then cleared); a question without answers is impossible (SQuAD v2.0).
func writeSQuAD(w io.Writer, name, path string, first *bool) error {
	return eachRow(name, path, func(n int64, line []byte) error {
		var row struct {
			ID, Context, Question *string
			Answers               *struct {
				Text        []string `json:"text"`
				AnswerStart []int    `json:"answer_start"`
			}
		}
		if err := json.Unmarshal(line, &row); err != nil {
			return fmt.Errorf("%s: row %d: want SQuAD's columns id, context, question and answers {text, answer_start}: %v", name, n, err)
		}
		for _, c := range []struct {
			col string
			ok  bool
		}{{"id", row.ID != nil}, {"context", row.Context != nil}, {"question", row.Question != nil}, {"answers", row.Answers != nil}} {
			if !c.ok {
				return fmt.Errorf("%s: row %d, column %q: missing or null (SQuAD rows have id, context, question and answers)", name, n, c.col)
			}
		}
		if len(row.Answers.Text) != len(row.Answers.AnswerStart) {
			return fmt.Errorf("%s: row %d, column \"answers\": %d texts, %d answer_start", name, n, len(row.Answers.Text), len(row.Answers.AnswerStart))
		}
		type qa struct {
			ID           string         `json:"id"`
			Question     string         `json:"question"`
			Answers      []shard.Answer `json:"answers"`
			IsImpossible bool           `json:"is_impossible"`
		}
		q := qa{ID: *row.ID, Question: *row.Question, Answers: []shard.Answer{}, IsImpossible: len(row.Answers.Text) == 0}
		for i, t := range row.Answers.Text {
			q.Answers = append(q.Answers, shard.Answer{Text: t, Start: row.Answers.AnswerStart[i]})
		}
		b, err := json.Marshal(struct {
			Context string `json:"context"`
			QAs     []qa   `json:"qas"`
		}{*row.Context, []qa{q}})
		if err != nil {
			return err
		}
		if !*first {
			b = append([]byte(","), b...)
		}
		*first = false
		_, err = w.Write(append(b, '\n'))
		return err
	})
}

// converter writes rows as JSON lines.
type converter struct {
	file   string
	labels [][]string // by top-level column: its ClassLabel names, or nil
	n      int64      // the row being written, from 0
	buf    bytes.Buffer
}

func (c *converter) row(root parquet.Node, cols [][]parquet.Value) error {
	c.buf.Reset()
	if err := c.object(root, "", cols, 0, 0, c.labels); err != nil {
		return err
	}
	c.buf.WriteByte('\n')
	return nil
}

// object writes group n as an object of its fields, whose paths are prefix and their
// names; labels holds each field's ClassLabel names (the root's), or is nil.
func (c *converter) object(n parquet.Node, prefix string, vals [][]parquet.Value, dl, rl int, labels [][]string) error {
	c.buf.WriteByte('{')
	for i, fl := range n.Fields() {
		k := leaves(fl)
		if i > 0 {
			c.buf.WriteByte(',')
		}
		c.str(fl.Name())
		c.buf.WriteByte(':')
		var names []string
		if labels != nil {
			names = labels[i]
		}
		if err := c.value(fl, prefix+fl.Name(), vals[:k], dl, rl, false, names); err != nil {
			return err
		}
		vals = vals[k:]
	}
	c.buf.WriteByte('}')
	return nil
}

// value writes one instance of node n: vals holds, for each leaf under n in order, the
// values of this instance (their repetition and definition levels count from the
// root); dl and rl are the levels of n's parent. An element of a repeated node is
// written with element set, its repetition already accounted for.
func (c *converter) value(n parquet.Node, path string, vals [][]parquet.Value, dl, rl int, element bool, names []string) error {
	if !element {
		switch {
		case n.Optional():
			if vals[0][0].DefinitionLevel() <= dl {
				c.buf.WriteString("null")
				return nil
			}
			dl++
		case n.Repeated(): // a bare repeated field, without the LIST annotation
			return c.list(n, false, path, vals, dl, rl, names)
		}
	}
	if n.Leaf() {
		return c.leaf(n, path, vals[0][0], names)
	}
	if isList(n) && len(n.Fields()) == 1 && n.Fields()[0].Repeated() {
		return c.list(n.Fields()[0], true, path, vals, dl, rl, names)
	}
	return c.object(n, path+".", vals, dl, rl, nil)
}

// list writes the elements of the repeated node rep as an array. In the standard
// three-level list (group (LIST) { repeated group list { element } }) the element is
// rep's one field; in the older two-level form, and for a bare repeated field, rep
// itself.
func (c *converter) list(rep parquet.Node, annotated bool, path string, vals [][]parquet.Value, dl, rl int, names []string) error {
	dl, rl = dl+1, rl+1
	c.buf.WriteByte('[')
	if vals[0][0].DefinitionLevel() < dl { // empty
		c.buf.WriteByte(']')
		return nil
	}
	elem, asElement := rep, true
	if annotated && !rep.Leaf() && len(rep.Fields()) == 1 {
		elem, asElement = rep.Fields()[0], false
	}
	// An element starts at each value repeated at rl: cut every leaf's values there.
	next := make([][]parquet.Value, len(vals))
	for i := 0; len(vals[0]) > 0; i++ {
		if i > 0 {
			c.buf.WriteByte(',')
		}
		for j, v := range vals {
			k := 1
			for k < len(v) && v[k].RepetitionLevel() > rl {
				k++
			}
			next[j], vals[j] = v[:k], v[k:]
		}
		if err := c.value(elem, fmt.Sprintf("%s[%d]", path, i), next, dl, rl, asElement, names); err != nil {
			return err
		}
	}
	c.buf.WriteByte(']')
	return nil
}

func (c *converter) leaf(n parquet.Node, path string, v parquet.Value, names []string) error {
	if v.IsNull() {
		c.buf.WriteString("null")
		return nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: row %d, column %q: %s", c.file, c.n, path, fmt.Sprintf(format, args...))
	}
	t := n.Type()
	var lt format.LogicalTypeValue
	if l := t.LogicalType(); l != nil {
		lt = l.Value
	}
	ct := deprecated.ConvertedType(-1)
	if p := t.ConvertedType(); p != nil {
		ct = *p
	}
	switch t.Kind() {
	case parquet.Boolean:
		c.buf.WriteString(strconv.FormatBool(v.Boolean()))
	case parquet.Int32, parquet.Int64:
		x := v.Int64()
		if t.Kind() == parquet.Int32 {
			x = int64(v.Int32())
		}
		switch lt := lt.(type) {
		case *format.DateType:
			c.str(time.Unix(x*86400, 0).UTC().Format(time.DateOnly))
			return nil
		case *format.TimestampType:
			if lt.Unit.Value == nil {
				return bad("a timestamp without a unit")
			}
			c.str(time.Unix(0, 0).Add(time.Duration(x) * lt.Unit.Value.Duration()).UTC().Format(time.RFC3339Nano))
			return nil
		case *format.DecimalType:
			c.buf.WriteString(decimal(big.NewInt(x), int(lt.Scale)))
			return nil
		case *format.IntType:
			if !lt.IsSigned && t.Kind() == parquet.Int32 {
				x = int64(uint32(x))
			} else if !lt.IsSigned {
				c.buf.WriteString(strconv.FormatUint(uint64(x), 10))
				return nil
			}
		}
		if names == nil {
			c.buf.WriteString(strconv.FormatInt(x, 10))
			return nil
		}
		switch {
		case x == -1:
			c.buf.WriteString("null")
		case x < 0 || x >= int64(len(names)):
			return bad("class id %d: the ClassLabel has %d names", x, len(names))
		default:
			c.str(names[x])
		}
	case parquet.Float, parquet.Double:
		x, bits := float64(v.Float()), 32
		if t.Kind() == parquet.Double {
			x, bits = v.Double(), 64
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			c.buf.WriteString("null")
			return nil
		}
		b, _ := json.Marshal(x)
		if bits == 32 {
			b, _ = json.Marshal(float32(x))
		}
		c.buf.Write(b)
	case parquet.ByteArray, parquet.FixedLenByteArray:
		b := v.ByteArray()
		switch lt := lt.(type) {
		case *format.StringType, *format.EnumType, *format.JsonType:
		case *format.DecimalType:
			c.buf.WriteString(decimal(new(big.Int).SetBytes(b), int(lt.Scale)))
			return nil
		default:
			if ct != deprecated.UTF8 && ct != deprecated.Enum && ct != deprecated.Json {
				c.str(base64.StdEncoding.EncodeToString(b))
				return nil
			}
		}
		if !utf8.Valid(b) {
			return bad("a string that is not valid UTF-8")
		}
		c.str(string(b))
	default:
		return bad("%s values are not supported", t)
	}
	return nil
}

// decimal writes the unscaled integer u over 10^scale.
func decimal(u *big.Int, scale int) string {
	if scale <= 0 {
		return u.String()
	}
	r := new(big.Rat).SetFrac(u, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
	return r.FloatString(scale)
}

func (c *converter) str(s string) {
	b, _ := json.Marshal(s) // a string always marshals
	c.buf.Write(b)
}

func isList(n parquet.Node) bool {
	if l := n.Type().LogicalType(); l != nil {
		_, ok := l.Value.(*format.ListType)
		return ok
	}
	ct := n.Type().ConvertedType()
	return ct != nil && *ct == deprecated.List
}

// leaves counts the leaf columns under n.
func leaves(n parquet.Node) int {
	if n.Leaf() {
		return 1
	}
	k := 0
	for _, f := range n.Fields() {
		k += leaves(f)
	}
	return k
}

// classLabels reads the ClassLabel names of the file's top-level columns from the
// "huggingface" key-value metadata that the datasets library writes:
// {"info": {"features": {COLUMN: {"_type": "ClassLabel", "names": [...]}}}}, or a
// list of them as {"_type": "Sequence" (or "List"), "feature": {...}} or [{...}].
func classLabels(f *parquet.File) (map[string][]string, error) {
	meta, ok := f.Lookup("huggingface")
	if !ok {
		return nil, nil
	}
	var doc struct {
		Info struct {
			Features map[string]json.RawMessage `json:"features"`
		} `json:"info"`
		Features map[string]json.RawMessage `json:"features"`
	}
	if err := json.Unmarshal([]byte(meta), &doc); err != nil {
		return nil, err
	}
	features := doc.Info.Features
	if features == nil {
		features = doc.Features
	}
	out := map[string][]string{}
	for col, raw := range features {
		if names := classNames(raw); names != nil {
			out[col] = names
		}
	}
	return out, nil
}

// classNames are a ClassLabel feature's names, or those of a list feature's
// ClassLabel elements; nil for any other feature.
func classNames(raw json.RawMessage) []string {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		if len(list) == 1 {
			return classNames(list[0])
		}
		return nil
	}
	var ft struct {
		Type    string          `json:"_type"`
		Names   []string        `json:"names"`
		Feature json.RawMessage `json:"feature"`
	}
	if json.Unmarshal(raw, &ft) != nil {
		return nil
	}
	switch ft.Type {
	case "ClassLabel":
		return ft.Names
	case "Sequence", "List", "LargeList":
		if len(ft.Feature) > 0 {
			return classNames(ft.Feature)
		}
	}
	return nil
}
