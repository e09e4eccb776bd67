package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/bertnode/bertnode/internal/atomicfile"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Series is one named value of the metrics log over training steps.
type Series struct {
	Name   string
	Steps  []float64
	Values []float64
}

// MetricsLog is what a trainer appended as JSON lines: one object per line
// with "step", optionally "epoch", and named numeric values (loss, lr,
// eval_f1 ...).
type MetricsLog struct {
	Series []Series // sorted by name
}

// ReadMetricsLog parses a JSON-lines metrics log; name (the file path) is
// used in error messages. Blank lines are skipped; non-numeric values (null,
// strings) are not plotted.
func ReadMetricsLog(r io.Reader, name string) (*MetricsLog, error) {
	byName := map[string]*Series{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, fmt.Errorf("%s:%d: not a JSON object: %v", name, line, err)
		}
		rawStep, ok := obj["step"]
		if !ok {
			return nil, fmt.Errorf("%s:%d: field \"step\" missing", name, line)
		}
		step, ok := rawStep.(float64)
		if !ok {
			return nil, fmt.Errorf("%s:%d: field \"step\" is %v, want a number", name, line, rawStep)
		}
		for k, v := range obj {
			f, ok := v.(float64)
			if !ok || k == "step" || k == "epoch" {
				continue
			}
			s := byName[k]
			if s == nil {
				s = &Series{Name: k}
				byName[k] = s
			}
			s.Steps = append(s.Steps, step)
			s.Values = append(s.Values, f)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if len(byName) == 0 {
		return nil, fmt.Errorf("%s: no metric values in %d lines", name, line)
	}
	log := &MetricsLog{}
	for _, s := range byName {
		log.Series = append(log.Series, *s)
	}
	slices.SortFunc(log.Series, func(a, b Series) int { return strings.Compare(a.Name, b.Name) })
	return log, nil
}

// panel groups the series drawn in one chart: a training value and its
// evaluation counterpart ("loss" and "eval_loss") share a panel.
type panel struct {
	title  string
	series []Series
}

func panels(log *MetricsLog) []panel {
	var ps []panel
	idx := map[string]int{}
	for _, s := range log.Series {
		title := strings.TrimPrefix(s.Name, "eval_")
		i, ok := idx[title]
		if !ok {
			i = len(ps)
			idx[title] = i
			ps = append(ps, panel{title: title})
		}
		if strings.HasPrefix(s.Name, "eval_") {
			ps[i].series = append(ps[i].series, s)
		} else { // the training value leads, in the first colour
			ps[i].series = slices.Insert(ps[i].series, 0, s)
		}
	}
	// Loss first, learning rate second, the rest alphabetically.
	rank := func(t string) int {
		switch t {
		case "loss":
			return 0
		case "lr", "learning_rate":
			return 1
		}
		return 2
	}
	sort.SliceStable(ps, func(i, j int) bool { return rank(ps[i].title) < rank(ps[j].title) })
	return ps
}

var seriesColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// CurvesPNG draws every metric of the log against the training step, one
// panel per metric (training and eval_ values together), two panels per row,
// on a width x height pixel image.
func CurvesPNG(w io.Writer, log *MetricsLog, width, height int) error {
	ps := panels(log)
	if len(ps) == 0 {
		return fmt.Errorf("report: metrics log has no series to draw")
	}
	cols := min(2, len(ps))
	rows := (len(ps) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	for i, pn := range ps {
		p := plot.New()
		p.Title.Text = pn.title
		p.X.Label.Text = "step"
		p.Add(plotter.NewGrid())
		for j, s := range pn.series {
			xys := make(plotter.XYs, len(s.Steps))
			for k := range s.Steps {
				xys[k] = plotter.XY{X: s.Steps[k], Y: s.Values[k]}
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return fmt.Errorf("report: series %s: %w", s.Name, err)
			}
			l.Color = seriesColors[j%len(seriesColors)]
			l.Width = vg.Points(1.5)
			p.Add(l)
			if len(xys) <= 30 { // sparse series (evaluations) get visible points
				sc, err := plotter.NewScatter(xys)
				if err != nil {
					return fmt.Errorf("report: series %s: %w", s.Name, err)
				}
				sc.Color = l.Color
				sc.Shape = draw.CircleGlyph{}
				p.Add(sc)
			}
			p.Legend.Add(s.Name, l)
		}
		p.Legend.Top = true
		plots[i/cols][i%cols] = p
	}
	return writePNG(w, width, height, func(dc draw.Canvas) {
		tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(8), PadY: vg.Points(8),
			PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(4)}
		canvases := plot.Align(plots, tiles, dc)
		for r := range plots {
			for c, p := range plots[r] {
				if p != nil {
					p.Draw(canvases[r][c])
				}
			}
		}
	})
}

// CurvesFile draws the metrics log at logPath (JSON lines) into a PNG at pngPath,
// written atomically.
func CurvesFile(logPath, pngPath string) error {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return err
	}
	log, err := ReadMetricsLog(bytes.NewReader(b), filepath.Base(logPath))
	if err != nil {
		return err
	}
	return atomicfile.Write(pngPath, 0o644, func(w io.Writer) error { return CurvesPNG(w, log, 900, 600) })
}
