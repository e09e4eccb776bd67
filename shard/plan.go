package shard

import (
	"fmt"
	"io"
)

// Shard is a record-aligned byte range [Start, End) of one file: it holds the
// records whose frame starts in it. It is a small value, so a coordinator can
// hand it out as a lease.
type Shard struct {
	File  string `json:"file" yaml:"file"`
	Index int    `json:"index" yaml:"index"`
	Start int64  `json:"start" yaml:"start"`
	End   int64  `json:"end" yaml:"end"`
	// Line is the line at Start, for messages.
	Line int `json:"line" yaml:"line"`
	// Records counts the shard's good records: those a Reader returns.
	Records int `json:"records" yaml:"records"`
}

// Plan is a file cut into shards.
type Plan struct {
	Shards  []Shard
	Records int
	Bad     Bad // bad records skipped while planning (only with SkipBadRecords)
}

// Split reads the file once, in constant memory, and cuts it into k shards
// of about equal size in bytes, at frame starts. The first shard starts at 0
// (it holds any header) and the last ends at the end of the file. A shard is
// empty when one frame spans its whole share, or when the file has fewer
// frames than k.
func Split(spec Spec, path string, k int) (*Plan, error) {
	if k < 1 {
		return nil, fmt.Errorf("shard: split %s into %d shards: want at least 1", path, k)
	}
	r, err := OpenFile(spec, path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	size := r.end
	p := &Plan{Shards: make([]Shard, 0, k)}
	cur := Shard{File: path, Start: 0, Line: 1}
	lastFrame := int64(-1)
	var rec Record
	for {
		err := r.Next(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if off := rec.Pos.Offset; off != lastFrame {
			lastFrame = off
			for i := len(p.Shards) + 1; i < k && off >= int64(i)*size/int64(k); i++ {
				cur.End = off
				p.Shards = append(p.Shards, cur)
				cur = Shard{File: path, Index: i, Start: off, Line: rec.Pos.Line}
			}
		}
		cur.Records++
		p.Records++
	}
	p.Bad = r.Bad()
	if p.Records == 0 {
		return nil, fmt.Errorf("%s: no records (%v)", path, p.Bad)
	}
	cur.End = size
	p.Shards = append(p.Shards, cur)
	for i := len(p.Shards); i < k; i++ {
		p.Shards = append(p.Shards, Shard{File: path, Index: i, Start: size, End: size, Line: r.Pos().Line})
	}
	return p, nil
}
