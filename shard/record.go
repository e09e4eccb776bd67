package shard

import "io"

// Pos is the address of a record.
type Pos struct {
	File string `json:"file" yaml:"file"`
	// Offset is the byte offset of the record's frame: the record itself, or
	// for SQuAD the paragraph object holding the question.
	Offset int64 `json:"offset" yaml:"offset"`
	// Index is the question's index within its SQuAD paragraph; 0 elsewhere.
	Index int `json:"index,omitempty" yaml:"index,omitempty"`
	// Line is the 1-based line at Offset, for messages.
	Line int `json:"line" yaml:"line"`
}

// Answer is one SQuAD answer. Start counts characters (runes) into the
// context, as SQuAD's answer_start does, not bytes.
type Answer struct {
	Text  string `json:"text"`
	Start int    `json:"answer_start"`
}

// Record is one training example of any task. Labels are class names; mapping
// them to ids is the trainer's business (see LabelSet).
type Record struct {
	Pos      Pos
	ID       string
	Text     string
	TextPair string
	Negative string   // a hard negative for the text (embedding models)
	Choices  []string // multiple choice: the answers to choose from, each read after Text
	Labels   []string // one label, or several for multi-label data
	Tokens   []string // token classification: one tag per token
	Tags     []string
	Question string // question answering
	Context  string
	Answers  []Answer
	// Impossible marks a SQuAD v2.0 question that the context does not answer.
	Impossible bool
}

// Clone returns a copy of r that shares no slices with it. Readers reuse a
// record's slices on the next call, so a record kept longer must be cloned.
func (r *Record) Clone() Record {
	c := *r
	c.Labels = append([]string(nil), r.Labels...)
	c.Tokens = append([]string(nil), r.Tokens...)
	c.Tags = append([]string(nil), r.Tags...)
	c.Answers = append([]Answer(nil), r.Answers...)
	c.Choices = append([]string(nil), r.Choices...)
	return c
}

// reset clears r for reuse, keeping the slices' memory.
func (r *Record) reset() {
	*r = Record{
		Labels:  r.Labels[:0],
		Tokens:  r.Tokens[:0],
		Tags:    r.Tags[:0],
		Answers: r.Answers[:0],
		Choices: r.Choices[:0],
	}
}

// Source is a stream of records; Next returns io.EOF after the last one.
// Next fills rec in place and may reuse its slices.
type Source interface {
	Next(rec *Record) error
}

// SliceSource is a Source over records held in memory.
func SliceSource(recs []Record) Source { return &sliceSource{recs: recs} }

type sliceSource struct{ recs []Record }

func (s *sliceSource) Next(rec *Record) error {
	if len(s.recs) == 0 {
		return io.EOF
	}
	*rec = s.recs[0].Clone()
	s.recs = s.recs[1:]
	return nil
}
