package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/bertnode/bertnode/augment"
	"github.com/bertnode/bertnode/dataset"
	"github.com/bertnode/bertnode/internal/atomicfile"
	"github.com/bertnode/bertnode/shard"
	"github.com/bertnode/bertnode/train"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newAugmentCmd) }

func newAugmentCmd() *cobra.Command {
	var (
		specFile, input, output string
		seed                    uint64
	)
	opts := augment.DefaultOptions()
	opts.NumAug = 4
	s := train.Defaults()
	c := &cobra.Command{
		Use:   "augment --input FILE --output FILE [flags]",
		Short: "Write a data file with EDA-augmented copies of every text",
		Long: `Reads a labelled data file and writes every record followed by up to --n
augmented copies of its text, each keeping the record's labels (and text_pair), made
by EDA: synonym replacement and insertion from WordNet 3.0, random swap and random
deletion of words. A text too short to vary gets fewer copies. The output is the same
for the same input, options and --seed.

Formats: csv, tsv, labeltext, jsonl and parquet (text classification). conll and
squad are not supported: augmenting them would have to move token tags and answer
spans along. The output has the input's format (a Parquet input's is JSON lines) and
reads back with the same data flags, with two differences: it is UTF-8 (drop
--encoding to read it), and of a csv, tsv, jsonl or parquet input it keeps only the
text, text_pair, label and id columns or fields, at the
same names (or, for columns given by index, the same positions). Augmented copies
of a record with an id get the id "<id>-aug<k>".

Synonyms come from Debian's wordnet-base files (/usr/share/wordnet; 'make deps'
installs them), or --wordnet / $WNSEARCHDIR.`,
		Example: `  bertnode augment --input data/sms_spam/SMSSpamCollection --format labeltext \
    --output runs/sms-aug.txt --n 4 --seed 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := loadSpec(cmd, specFile, s)
			if err != nil {
				return err
			}
			switch {
			case input == "":
				return fmt.Errorf("--input: a data file is required")
			case output == "":
				return fmt.Errorf("--output: a file to write is required")
			}
			a, err := augment.New(opts)
			if err != nil {
				return err
			}
			n, copies, bad, err := augmentFile(spec.Data, input, output, a, seed)
			if err != nil {
				return err
			}
			if bad.Count > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s\n", bad)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d records and %d augmented copies (UTF-8)\n", output, n, copies)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&input, "input", "", "labelled data file to augment: a path or an hf://datasets/ URL")
	f.StringVar(&output, "output", "", "file to write, in the input's format (a Parquet input's: JSON lines)")
	f.IntVar(&opts.NumAug, "n", opts.NumAug, "augmented copies per record")
	f.Uint64Var(&seed, "seed", 1, "random seed")
	f.Float64Var(&opts.AlphaSR, "alpha-sr", opts.AlphaSR, "synonym replacement: fraction of words replaced (0: off)")
	f.Float64Var(&opts.AlphaRI, "alpha-ri", opts.AlphaRI, "random insertion: synonyms inserted, as a fraction of the words (0: off)")
	f.Float64Var(&opts.AlphaRS, "alpha-rs", opts.AlphaRS, "random swap: word swaps, as a fraction of the words (0: off)")
	f.Float64Var(&opts.PRD, "p-rd", opts.PRD, "random deletion: probability of deleting each word (0: off)")
	f.StringVar(&opts.WordNetDir, "wordnet", "", "WordNet 3.0 database directory (default $WNSEARCHDIR, else "+augment.DefaultWordNetDir+")")
	f.StringVar(&specFile, "spec", "", "YAML job spec whose data section says how to read --input")
	addSpecFlags(f, &s, dataFlags...)
	return c
}

// augmentFile streams the records of in to out, each followed by its augmented copies.
// Record i's copies come from a generator seeded with (seed, i), so they do not depend
// on the records before it. It returns the number of records and of copies written, and
// the bad records skipped.
func augmentFile(spec shard.Spec, in, out string, a *augment.Augmenter, seed uint64) (n, copies int, bad shard.Bad, err error) {
	f, err := dataset.Resolve(in, spec)
	if err != nil {
		return 0, 0, bad, err
	}
	r, err := f.Open()
	if err != nil {
		return 0, 0, bad, err
	}
	defer r.Close()
	spec = f.Spec // a Parquet file's rows are read, and written, as JSON lines
	if spec.Format == "" {
		spec.Format, _ = shard.FormatOf(in) // Open succeeded, so the extension names it
	}
	rw, err := newRecordWriter(spec)
	if err != nil {
		return 0, 0, bad, err
	}
	err = atomicfile.Write(out, 0o644, func(w io.Writer) error {
		if err := rw.writeHeader(w); err != nil {
			return err
		}
		var rec shard.Record
		for ; ; n++ {
			if err := r.Next(&rec); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			if err := rw.write(w, &rec); err != nil {
				return err
			}
			orig := rec
			for k, text := range a.Augment(rec.Text, rand.New(rand.NewPCG(seed, uint64(n)))) {
				rec.Text = text
				if orig.ID != "" {
					rec.ID = orig.ID + "-aug" + strconv.Itoa(k+1)
				}
				if err := rw.write(w, &rec); err != nil {
					return err
				}
				copies++
			}
			rec = orig
		}
	})
	return n, copies, r.Bad(), err
}

// recordWriter writes text-classification records so that a shard reader with the
// spec they were read with reads them back. Rows of labeltext, csv and tsv are built in
// one reused buffer; jsonl goes through encoding/json.
type recordWriter struct {
	spec   shard.Spec
	cols   []column // csv, tsv: the fields written and where
	width  int      // csv, tsv: columns per row
	header []string // csv, tsv: nil without a header line
	delim  string
	quote  bool
	row    []string
	line   []byte
	buf    bytes.Buffer // jsonl
	enc    *json.Encoder
}

// column is one record field of a csv or tsv row.
type column struct {
	field string // spec field, for messages
	at    int    // position in the row
	get   func(*shard.Record, string) string
}

func newRecordWriter(spec shard.Spec) (*recordWriter, error) {
	rw := &recordWriter{spec: spec, delim: spec.Delimiter}
	switch spec.Format {
	case shard.LabelText:
		if rw.delim == "" {
			rw.delim = " " // the reader's default splits at the first run of spaces and tabs
		}
		return rw, nil
	case shard.JSONL:
		if spec.Tokens != "" {
			return nil, fmt.Errorf("augment: jsonl with tokens and tags (token classification) is not supported")
		}
		return rw, nil
	case shard.CSV, shard.TSV:
	default:
		return nil, fmt.Errorf("augment: format %s is not supported (csv, tsv, labeltext and jsonl are)", spec.Format)
	}
	header := spec.Header == nil || *spec.Header
	rw.quote = spec.Format == shard.CSV
	if spec.Quote != nil {
		rw.quote = *spec.Quote
	}
	if rw.delim == "" {
		rw.delim = map[shard.Format]string{shard.CSV: ",", shard.TSV: "\t"}[spec.Format]
	}
	text, label := spec.Text, spec.Label
	if header && text == "" {
		text = "text"
	}
	if header && label == "" {
		label = "label"
	}
	named, indexed := 0, 0
	for _, c := range []struct {
		field, col string
		get        func(*shard.Record, string) string
	}{
		{"text", text, func(r *shard.Record, _ string) string { return r.Text }},
		{"text_pair", spec.TextPair, func(r *shard.Record, _ string) string { return r.TextPair }},
		{"label", label, func(r *shard.Record, sep string) string { return strings.Join(r.Labels, sep) }},
		{"id", spec.ID, func(r *shard.Record, _ string) string { return r.ID }},
	} {
		if c.col == "" {
			continue
		}
		at, err := strconv.Atoi(c.col)
		if err != nil || at < 0 {
			at = named
			named++
			rw.header = append(rw.header, c.col)
		} else {
			indexed++
		}
		rw.cols = append(rw.cols, column{field: c.field, at: at, get: c.get})
		rw.width = max(rw.width, at+1)
	}
	if named > 0 && indexed > 0 {
		return nil, fmt.Errorf("augment: %s columns mix names and indexes; give all by name or all by index", spec.Format)
	}
	if indexed > 0 && header {
		// Names that are not numbers, so that the indexes still pick the columns.
		rw.header = make([]string, rw.width)
		for i := range rw.header {
			rw.header[i] = "column" + strconv.Itoa(i)
		}
	}
	rw.row = make([]string, rw.width)
	return rw, nil
}

func (rw *recordWriter) writeHeader(w io.Writer) error {
	if rw.header == nil {
		return nil
	}
	return rw.writeRow(w, rw.header, nil)
}

func (rw *recordWriter) write(w io.Writer, rec *shard.Record) error {
	if len(rec.Labels) > 1 && rw.spec.LabelSep == "" && rw.spec.Format != shard.JSONL {
		return fmt.Errorf("%s:%d: %d labels and no label_sep to join them", rec.Pos.File, rec.Pos.Line, len(rec.Labels))
	}
	switch rw.spec.Format {
	case shard.LabelText:
		label := strings.Join(rec.Labels, rw.spec.LabelSep)
		if strings.Contains(label, rw.delim) || rw.spec.Delimiter == "" && strings.ContainsAny(label, " \t") {
			return fmt.Errorf("%s:%d: label %q holds the delimiter %q", rec.Pos.File, rec.Pos.Line, label, rw.delim)
		}
		if strings.ContainsAny(rec.Text, "\r\n") {
			return fmt.Errorf("%s:%d: text holds a line break, which labeltext cannot write", rec.Pos.File, rec.Pos.Line)
		}
		rw.line = append(append(append(append(rw.line[:0], label...), rw.delim...), rec.Text...), '\n')
		_, err := w.Write(rw.line)
		return err
	case shard.JSONL:
		return rw.writeJSON(w, rec)
	}
	clear(rw.row)
	for _, c := range rw.cols {
		rw.row[c.at] = c.get(rec, rw.spec.LabelSep)
	}
	return rw.writeRow(w, rw.row, rec)
}

// writeRow writes one csv or tsv line (rec's, or the header's when rec is nil), quoting
// fields as RFC 4180 does when the spec quotes, else refusing fields that would break
// the row.
func (rw *recordWriter) writeRow(w io.Writer, fields []string, rec *shard.Record) error {
	line := rw.line[:0]
	for i, f := range fields {
		if i > 0 {
			line = append(line, rw.delim...)
		}
		special := strings.Contains(f, rw.delim) || strings.ContainsAny(f, "\r\n")
		switch {
		case rw.quote && (special || strings.Contains(f, `"`)):
			line = append(line, '"')
			for k := strings.IndexByte(f, '"'); k >= 0; k = strings.IndexByte(f, '"') {
				line = append(append(line, f[:k+1]...), '"') // a quote is doubled
				f = f[k+1:]
			}
			line = append(append(line, f...), '"')
		case special:
			where := "header"
			if rec != nil {
				where = fmt.Sprintf("%s:%d", rec.Pos.File, rec.Pos.Line)
			}
			return fmt.Errorf("%s: a field holds the delimiter or a line break, which %s without quoting cannot write: %.40q", where, rw.spec.Format, f)
		default:
			line = append(line, f...)
		}
	}
	rw.line = append(line, '\n')
	_, err := w.Write(rw.line)
	return err
}

// writeJSON writes one object with the spec's field names. Several labels become an
// array, or one string joined by label_sep when the spec has one.
func (rw *recordWriter) writeJSON(w io.Writer, rec *shard.Record) error {
	s := rw.spec
	if rw.enc == nil {
		rw.enc = json.NewEncoder(&rw.buf)
		rw.enc.SetEscapeHTML(false)
	}
	rw.buf.Reset()
	rw.buf.WriteByte('{')
	var label any = rec.Labels
	if len(rec.Labels) == 1 || s.LabelSep != "" {
		label = strings.Join(rec.Labels, s.LabelSep)
	}
	for _, f := range []struct {
		key string
		v   any
	}{{s.ID, rec.ID}, {cmp.Or(s.Text, "text"), rec.Text}, {s.TextPair, rec.TextPair}, {cmp.Or(s.Label, "label"), label}} {
		if f.key == "" || f.v == "" && f.key == s.ID {
			continue
		}
		if rw.buf.Len() > 1 {
			rw.buf.WriteByte(',')
		}
		for _, v := range []any{f.key, f.v} {
			if err := rw.enc.Encode(v); err != nil {
				return err
			}
			rw.buf.Truncate(rw.buf.Len() - 1) // Encode's newline
			rw.buf.WriteByte(':')
		}
		rw.buf.Truncate(rw.buf.Len() - 1)
	}
	rw.buf.WriteString("}\n")
	_, err := w.Write(rw.buf.Bytes())
	return err
}
