package netlab

import (
	"fmt"
	"strconv"
	"strings"
)

// Rate is a link rate in bits per second; the units are decimal, as tc's are.
type Rate uint64

const (
	Kbit Rate = 1000
	Mbit      = 1000 * Kbit
	Gbit      = 1000 * Mbit
)

// ParseRate reads a rate the way tc writes it: 100mbit, 1gbit, 2.5Gbit, 800kbit, or a
// bare number of bits per second.
func ParseRate(s string) (Rate, error) {
	t := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "bit")
	mult := 1.0
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1e3, t[:len(t)-1]
	case strings.HasSuffix(t, "m"):
		mult, t = 1e6, t[:len(t)-1]
	case strings.HasSuffix(t, "g"):
		mult, t = 1e9, t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v*mult < 8 || v*mult > 1e12 {
		return 0, fmt.Errorf("netlab: rate %q: want a positive number of bits per second up to 1000gbit, e.g. 100mbit or 1gbit", s)
	}
	return Rate(v * mult), nil
}

// String writes the rate in the largest unit that keeps it whole.
func (r Rate) String() string {
	switch {
	case r >= Gbit && r%Gbit == 0:
		return fmt.Sprintf("%dgbit", r/Gbit)
	case r >= Mbit && r%Mbit == 0:
		return fmt.Sprintf("%dmbit", r/Mbit)
	case r >= Kbit && r%Kbit == 0:
		return fmt.Sprintf("%dkbit", r/Kbit)
	}
	return fmt.Sprintf("%dbit", uint64(r))
}

// BytesPerSecond is the rate in bytes per second.
func (r Rate) BytesPerSecond() float64 { return float64(r) / 8 }
