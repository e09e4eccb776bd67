package shard

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// A dataset is a synthetic file with the records it must read back as.
type dataset struct {
	name string
	spec Spec
	file string // file name, whose extension matters to format guessing
	data string
	want []Record
}

var textPieces = []string{
	"plain words", "with, comma", `say "hi"`, "line one\nline two", "a\n\nblank line inside",
	"ünïcödé ✓ 日本語", "trailing space ", "tab\there", "", `"starts with a quote`, "😀 emoji",
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func csvQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// genCSV writes CSV with quoted fields holding delimiters, quotes and
// newlines, CRLF and LF records, blank lines between records and a
// multi-label column.
func genCSV(rng *rand.Rand, n int) dataset {
	var b strings.Builder
	b.WriteString("id,text,labels\n")
	var want []Record
	for i := range n {
		text := pick(rng, textPieces)
		if rng.IntN(2) == 0 {
			text += " " + pick(rng, textPieces)
		}
		labels := []string{pick(rng, []string{"pos", "neg", "neutral"})}
		if rng.IntN(3) == 0 {
			labels = append(labels, "extra")
		}
		field := text
		if strings.ContainsAny(text, ",\"\n\r") || text == "" || rng.IntN(4) == 0 {
			field = csvQuote(text)
		}
		eol := pick(rng, []string{"\n", "\r\n"})
		fmt.Fprintf(&b, "%d,%s,%s%s", i, field, strings.Join(labels, "|"), eol)
		if rng.IntN(8) == 0 {
			b.WriteString("\n")
		}
		want = append(want, Record{ID: strconv.Itoa(i), Text: text, Labels: labels})
	}
	return dataset{name: "csv", spec: Spec{Text: "text", Label: "labels", ID: "id", LabelSep: "|"}, file: "d.csv", data: b.String(), want: want}
}

func genTSV(rng *rand.Rand, n int) dataset {
	var b strings.Builder
	b.WriteString("sentence\tlabel\n")
	var want []Record
	for range n {
		text := strings.NewReplacer("\t", " ", "\n", " ").Replace(pick(rng, textPieces) + " " + pick(rng, textPieces))
		label := strconv.Itoa(rng.IntN(2))
		fmt.Fprintf(&b, "%s\t%s\n", text, label)
		want = append(want, Record{Text: text, Labels: []string{label}})
	}
	return dataset{name: "tsv", spec: Spec{Text: "sentence"}, file: "d.tsv", data: b.String(), want: want}
}

func genJSONL(rng *rand.Rand, n int) dataset {
	var b strings.Builder
	var want []Record
	for i := range n {
		text := pick(rng, textPieces)
		pair := pick(rng, textPieces)
		var label any
		var labels []string
		switch rng.IntN(3) {
		case 0:
			label, labels = "sports", []string{"sports"}
		case 1:
			label, labels = 3, []string{"3"}
		default:
			label, labels = []any{"a", 7}, []string{"a", "7"}
		}
		line, _ := json.Marshal(map[string]any{"sentence1": text, "sentence2": pair, "y": label, "idx": i})
		b.Write(line)
		b.WriteString(pick(rng, []string{"\n", "\n", "\r\n", "\n\n"}))
		want = append(want, Record{ID: strconv.Itoa(i), Text: text, TextPair: pair, Labels: labels})
	}
	return dataset{name: "jsonl", spec: Spec{Text: "sentence1", TextPair: "sentence2", Label: "y", ID: "idx"}, file: "d.jsonl", data: b.String(), want: want}
}

func genLabelText(rng *rand.Rand, n int) dataset {
	var b strings.Builder
	var want []Record
	for range n {
		text := strings.ReplaceAll(pick(rng, textPieces)+" "+pick(rng, textPieces), "\n", " ")
		text = strings.TrimLeft(text, " \t")
		if strings.TrimSpace(text) == "" {
			text = "why ?"
		}
		label := pick(rng, []string{"0", "1", "5"})
		fmt.Fprintf(&b, "%s%s%s\n", label, pick(rng, []string{" ", "  ", "\t"}), text)
		want = append(want, Record{Text: text, Labels: []string{label}})
	}
	return dataset{name: "labeltext", spec: Spec{Format: LabelText}, file: "d.txt", data: b.String(), want: want}
}

func genCoNLL(rng *rand.Rand, n int) dataset {
	var b strings.Builder
	var want []Record
	b.WriteString("-DOCSTART- -X- -X- O\n\n")
	for range n {
		var r Record
		for range 1 + rng.IntN(6) {
			tok := pick(rng, []string{"Paris", "is", "ünïcödé", "@user", ".", "New\u00a0York"})
			tag := pick(rng, []string{"O", "B-location", "I-location"})
			fmt.Fprintf(&b, "%s\t%s\n", tok, tag)
			r.Tokens, r.Tags = append(r.Tokens, tok), append(r.Tags, tag)
		}
		b.WriteString(pick(rng, []string{"\n", "\t\n", "\n\n", "\n-DOCSTART- -X- -X- O\n\n"}))
		want = append(want, r)
	}
	return dataset{name: "conll", spec: Spec{Format: CoNLL}, file: "d.conll", data: b.String(), want: want}
}

// genSQuAD writes SQuAD v2.0 JSON with unanswerable questions, non-ASCII
// contexts (answer_start counts runes) and keys around the data array.
func genSQuAD(rng *rand.Rand, n int) dataset {
	type answer struct {
		Text  string `json:"text"`
		Start int    `json:"answer_start"`
	}
	type qa struct {
		ID           string   `json:"id"`
		Question     string   `json:"question"`
		Answers      []answer `json:"answers"`
		IsImpossible bool     `json:"is_impossible"`
	}
	type paragraph struct {
		QAs     []qa   `json:"qas"`
		Context string `json:"context"`
	}
	type article struct {
		Title      string      `json:"title"`
		Paragraphs []paragraph `json:"paragraphs"`
	}
	var want []Record
	var arts []article
	for q := 0; q < n; {
		art := article{Title: fmt.Sprintf("Art \"%d\" ✓", len(arts))}
		for range 1 + rng.IntN(3) {
			ctx := strings.Repeat("Zürich – ", rng.IntN(4)) + "The river Limmat flows through Zürich."
			var p paragraph
			p.Context = ctx
			for range rng.IntN(4) { // some paragraphs have no questions
				id := fmt.Sprintf("q%d", q)
				q++
				if rng.IntN(3) == 0 {
					p.QAs = append(p.QAs, qa{ID: id, Question: "Who?", Answers: []answer{}, IsImpossible: true})
					want = append(want, Record{ID: id, Question: "Who?", Context: ctx, Impossible: true})
					continue
				}
				start := len([]rune(ctx)) - len([]rune("Zürich.")) // a rune offset, not a byte offset
				a := answer{Text: "Zürich", Start: start}
				p.QAs = append(p.QAs, qa{ID: id, Question: "Where does the Limmat flow?", Answers: []answer{a}})
				want = append(want, Record{ID: id, Question: "Where does the Limmat flow?", Context: ctx, Answers: []Answer{{Text: a.Text, Start: a.Start}}})
			}
			art.Paragraphs = append(art.Paragraphs, p)
		}
		arts = append(arts, art)
	}
	doc := map[string]any{"version": "v2.0", "data": arts, "aaa": []any{1, "x", map[string]any{"data": 1}}}
	var out []byte
	if rng.IntN(2) == 0 {
		out, _ = json.MarshalIndent(doc, "", "  ")
	} else {
		out, _ = json.Marshal(doc)
	}
	return dataset{name: "squad", spec: Spec{}, file: "d.json", data: string(out), want: want}
}

var generators = []func(*rand.Rand, int) dataset{genCSV, genTSV, genJSONL, genLabelText, genCoNLL, genSQuAD}
