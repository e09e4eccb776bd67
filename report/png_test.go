package report

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/internal/atomicfile"
)

func decodePNG(t *testing.T, b []byte, w, h int) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("output is not a PNG: %v", err)
	}
	if got := img.Bounds().Size(); got != (image.Point{X: w, Y: h}) {
		t.Fatalf("PNG is %v, want %dx%d", got, w, h)
	}
	return img
}

// darkBlue counts pixels close to the darkest colour of the Blues palette,
// which only a cell holding (nearly) its whole gold row gets.
func darkBlue(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if c.R < 0x20 && c.G < 0x50 && c.B > 0x60 {
				n++
			}
		}
	}
	return n
}

func TestConfusionPNG(t *testing.T) {
	labels := []string{"ham", "spam", "other"}
	var diag, off bytes.Buffer
	if err := ConfusionPNG(&diag, labels, [][]int64{{50, 0, 0}, {0, 7, 0}, {0, 0, 3}}, 400); err != nil {
		t.Fatal(err)
	}
	if err := ConfusionPNG(&off, labels, [][]int64{{0, 50, 0}, {0, 0, 7}, {3, 0, 0}}, 400); err != nil {
		t.Fatal(err)
	}
	a, b := decodePNG(t, diag.Bytes(), 400, 400), decodePNG(t, off.Bytes(), 400, 400)
	// Three full cells are dark in both; a cell is over 80x80 pixels.
	if da, db := darkBlue(a), darkBlue(b); da < 3*80*80 || db < 3*80*80 {
		t.Errorf("dark cell pixels %d and %d, want at least three cells' worth", da, db)
	}
	if bytes.Equal(diag.Bytes(), off.Bytes()) {
		t.Error("different matrices rendered the same image")
	}
	// A row-normalized colour scale: one class with all the examples must not
	// wash out a small class that is classified perfectly.
	var skew bytes.Buffer
	if err := ConfusionPNG(&skew, labels[:2], [][]int64{{100000, 0}, {0, 1}}, 300); err != nil {
		t.Fatal(err)
	}
	if d := darkBlue(decodePNG(t, skew.Bytes(), 300, 300)); d < 2*80*80 {
		t.Errorf("only %d dark pixels: the 1-example class is not shown as fully right", d)
	}
}

func TestConfusionPNGRejectsBadShapes(t *testing.T) {
	for _, tc := range []struct {
		counts [][]int64
		want   string
	}{
		{[][]int64{{1, 2}}, "1 rows for 2 labels"},
		{[][]int64{{1, 2}, {3}}, "row 1 (b) has 1 columns"},
	} {
		err := ConfusionPNG(&bytes.Buffer{}, []string{"a", "b"}, tc.counts, 200)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	if err := ConfusionPNG(&bytes.Buffer{}, []string{"a"}, [][]int64{{1}}, 10); err == nil {
		t.Error("a 10x10 pixel image was accepted")
	}
}

// The PNG is written through atomicfile, the way the eval command saves it.
func TestConfusionPNGToFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "confusion.png")
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return ConfusionPNG(w, []string{"a", "b"}, [][]int64{{3, 1}, {0, 4}}, 256)
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	decodePNG(t, b, 256, 256)
}
