package report

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/brewer"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg/draw"
)

// ConfusionPNG draws a confusion matrix (rows gold, columns predicted, as
// metrics.Confusion.Matrix returns it) as a size x size pixel heatmap with
// the count in every cell. Cells are coloured by their share of the gold row,
// i.e. per-class recall, so that rare classes stay readable next to frequent
// ones.
func ConfusionPNG(w io.Writer, labels []string, counts [][]int64, size int) error {
	n := len(labels)
	if n == 0 {
		return fmt.Errorf("report: confusion matrix without labels")
	}
	if len(counts) != n {
		return fmt.Errorf("report: confusion matrix has %d rows for %d labels", len(counts), n)
	}
	for g, row := range counts {
		if len(row) != n {
			return fmt.Errorf("report: confusion matrix row %d (%s) has %d columns for %d labels", g, labels[g], len(row), n)
		}
	}
	grid := confusionGrid{counts: counts, rowSum: make([]int64, n)}
	for g, row := range counts {
		for _, v := range row {
			grid.rowSum[g] += v
		}
	}

	pal, err := brewer.GetPalette(brewer.TypeSequential, "Blues", 9)
	if err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = "Confusion matrix (colour: share of gold row)"
	p.X.Label.Text = "predicted"
	p.Y.Label.Text = "gold"
	hm := plotter.NewHeatMap(grid, pal)
	hm.Min, hm.Max = 0, 1
	p.Add(hm)

	var cells plotter.XYLabels
	for g := range n {
		for pr := range n {
			cells.XYs = append(cells.XYs, plotter.XY{X: float64(pr), Y: grid.Y(n - 1 - g)})
			cells.Labels = append(cells.Labels, strconv.FormatInt(counts[g][pr], 10))
		}
	}
	lbl, err := plotter.NewLabels(cells)
	if err != nil {
		return err
	}
	for i := range lbl.TextStyle {
		st := &lbl.TextStyle[i]
		st.XAlign, st.YAlign = draw.XCenter, draw.YCenter
		g, pr := i/n, i%n
		st.Color = color.Black
		if grid.share(g, pr) > 0.6 { // dark cell
			st.Color = color.White
		}
	}
	p.Add(lbl)

	p.NominalX(labels...)
	ys := make([]string, n)
	for g, l := range labels {
		ys[n-1-g] = l // first gold label on top, as in a printed matrix
	}
	p.NominalY(ys...)
	if n > 4 {
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
	return writePNG(w, size, size, p.Draw)
}

// confusionGrid shows gold row g at y = n-1-g so that row 0 is on top.
type confusionGrid struct {
	counts [][]int64
	rowSum []int64
}

func (c confusionGrid) Dims() (int, int)  { return len(c.counts), len(c.counts) }
func (c confusionGrid) X(col int) float64 { return float64(col) }
func (c confusionGrid) Y(row int) float64 { return float64(row) }
func (c confusionGrid) Z(col, row int) float64 {
	return c.share(len(c.counts)-1-row, col)
}

func (c confusionGrid) share(g, p int) float64 {
	if c.rowSum[g] == 0 {
		return 0
	}
	return float64(c.counts[g][p]) / float64(c.rowSum[g])
}
