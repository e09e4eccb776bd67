// Package report renders evaluation and training output for people: PNG
// charts (confusion matrix heatmap, loss and metric curves), a self-contained
// HTML attention head view, and error-analysis files. Renderers write to an
// io.Writer; write files with atomicfile.Write so a reader never sees a torn
// file:
//
//	atomicfile.Write(path, 0o644, func(w io.Writer) error {
//		return report.ConfusionPNG(w, labels, counts, 800)
//	})
package report

import (
	"fmt"
	"io"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// dpi relates the plot's point-based lengths (fonts, line widths) to pixels.
const dpi = 96

// writePNG draws onto a width x height pixel canvas and encodes it as PNG.
func writePNG(w io.Writer, width, height int, paint func(draw.Canvas)) error {
	if width < 64 || height < 64 {
		return fmt.Errorf("report: image size %dx%d too small (want at least 64x64 pixels)", width, height)
	}
	px := vg.Inch / dpi
	c := vgimg.NewWith(vgimg.UseWH(vg.Length(width)*px, vg.Length(height)*px), vgimg.UseDPI(dpi))
	paint(draw.New(c))
	_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
	return err
}
