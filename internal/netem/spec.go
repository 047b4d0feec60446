package netem

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Limits of a Spec's values.
const (
	// MaxFieldLen is the longest value a Spec field may hold, in bytes.
	MaxFieldLen = 32
	// MaxDelay bounds delay and jitter.
	MaxDelay = 60 * time.Second
	// MinRate and MaxRate bound rate, in bits per second.
	MinRate uint64 = 8
	MaxRate uint64 = 100_000_000_000
	// PercentDecimals is the finest precision of a percentage: 0.0001%.
	PercentDecimals = 4
)

// ErrInvalid marks a Spec value rejected by Validate or Params; the error
// message names the field ("netem.loss") and the bad value.
var ErrInvalid = errors.New("invalid impairment")

// Spec is one link end's declared impairment, as written in ratchet.links
// "netem", topology files and link records. Empty fields impair nothing.
//
// Units:
//   - delay, jitter: a decimal number and one of "us" (or "µs"), "ms", "s",
//     e.g. "20ms", "1.5ms", "250us"; whole microseconds; at most 60s.
//     jitter needs delay.
//   - loss, corrupt, duplicate, reorder: a percentage with at most four
//     decimals and the "%" sign, e.g. "0.5%", "100%". reorder needs delay.
//   - rate: a decimal number and a unit as tc spells them,
//     case-insensitive: "bit", "kbit", "mbit", "gbit", "tbit" are bits per
//     second (powers of 1000); "bps", "kbps", "mbps", "gbps", "tbps" are
//     BYTES per second, as in tc. E.g. "100mbit", "512kbit", "1gbit",
//     "1.5mbit". Whole bits per second, from 8bit to 100gbit.
type Spec struct {
	Delay     string `json:"delay,omitempty"`
	Jitter    string `json:"jitter,omitempty"`
	Loss      string `json:"loss,omitempty"`
	Rate      string `json:"rate,omitempty"`
	Corrupt   string `json:"corrupt,omitempty"`
	Duplicate string `json:"duplicate,omitempty"`
	Reorder   string `json:"reorder,omitempty"`
}

// Params are a Spec's parsed values. Probabilities are fractions from 0
// to 1; a zero value impairs nothing.
type Params struct {
	Delay     time.Duration
	Jitter    time.Duration
	Loss      float64
	Corrupt   float64
	Duplicate float64
	Reorder   float64
	// Rate is in bits per second; 0 means not limited.
	Rate uint64
}

// Equal reports whether two Specs (nil: none) impair alike, field by
// field as written.
func (s *Spec) Equal(o *Spec) bool {
	zero := func(x *Spec) bool { return x == nil || x.IsZero() }
	if zero(s) || zero(o) {
		return zero(s) && zero(o)
	}
	return *s == *o
}

// IsZero reports whether the Spec declares nothing.
func (s Spec) IsZero() bool { return s == Spec{} }

// Validate checks every field completely; the error names each bad field
// ("netem.loss: ...") with its value, and matches ErrInvalid.
func (s Spec) Validate() error {
	_, err := s.Params()
	return err
}

// Params parses the Spec. It fails exactly when Validate does.
func (s Spec) Params() (Params, error) {
	var p Params
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	p.Delay, err = parseDuration("delay", s.Delay)
	check(err)
	p.Jitter, err = parseDuration("jitter", s.Jitter)
	check(err)
	p.Loss, err = parsePercent("loss", s.Loss)
	check(err)
	p.Corrupt, err = parsePercent("corrupt", s.Corrupt)
	check(err)
	p.Duplicate, err = parsePercent("duplicate", s.Duplicate)
	check(err)
	p.Reorder, err = parsePercent("reorder", s.Reorder)
	check(err)
	p.Rate, err = parseRate("rate", s.Rate)
	check(err)
	if len(errs) == 0 {
		if p.Jitter > 0 && p.Delay == 0 {
			errs = append(errs, fieldErr("jitter", s.Jitter, "needs netem.delay"))
		}
		if p.Reorder > 0 && p.Delay == 0 {
			errs = append(errs, fieldErr("reorder", s.Reorder, "needs netem.delay"))
		}
	}
	if len(errs) > 0 {
		return Params{}, errors.Join(errs...)
	}
	return p, nil
}

// fieldErr is the error for one bad field.
func fieldErr(field, value, why string) error {
	return fmt.Errorf("%w: netem.%s: %q: %s", ErrInvalid, field, value, why)
}

var (
	durationRE = regexp.MustCompile(`^[0-9]{1,9}(\.[0-9]{1,9})?(us|µs|ms|s)$`)
	percentRE  = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,4})?%$`)
	rateRE     = regexp.MustCompile(`^([0-9]{1,12}(\.[0-9]{1,9})?)([A-Za-z]{3,4})$`)
)

// checkLen rejects values over MaxFieldLen before any parsing.
func checkLen(field, v string) error {
	if len(v) > MaxFieldLen {
		return fieldErr(field, v[:MaxFieldLen]+"…", fmt.Sprintf("longer than %d bytes", MaxFieldLen))
	}
	return nil
}

// parseDuration parses a delay or jitter value.
func parseDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if err := checkLen(field, v); err != nil {
		return 0, err
	}
	const want = `want a duration like "20ms", "1.5ms" or "250us" (units us, ms, s)`
	if !durationRE.MatchString(v) {
		return 0, fieldErr(field, v, want)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fieldErr(field, v, want)
	}
	if d > MaxDelay {
		return 0, fieldErr(field, v, fmt.Sprintf("above the maximum %s", MaxDelay))
	}
	if d%time.Microsecond != 0 {
		return 0, fieldErr(field, v, "finer than a microsecond")
	}
	return d, nil
}

// parsePercent parses a probability given as a percentage into a fraction.
func parsePercent(field, v string) (float64, error) {
	if v == "" {
		return 0, nil
	}
	if err := checkLen(field, v); err != nil {
		return 0, err
	}
	if !percentRE.MatchString(v) {
		return 0, fieldErr(field, v, fmt.Sprintf(`want a percentage like "0.5%%" (0%% to 100%%, at most %d decimals)`, PercentDecimals))
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil {
		return 0, fieldErr(field, v, "not a number")
	}
	if f > 100 {
		return 0, fieldErr(field, v, "above 100%")
	}
	return f / 100, nil
}

// rateUnits maps tc's rate units to bits per second.
var rateUnits = map[string]uint64{
	"bit":  1,
	"kbit": 1e3,
	"mbit": 1e6,
	"gbit": 1e9,
	"tbit": 1e12,
	"bps":  8,
	"kbps": 8e3,
	"mbps": 8e6,
	"gbps": 8e9,
	"tbps": 8e12,
}

// parseRate parses a rate into bits per second.
func parseRate(field, v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	if err := checkLen(field, v); err != nil {
		return 0, err
	}
	const want = `want a rate like "100mbit", "512kbit" or "1gbit" (units bit, kbit, mbit, gbit, tbit; bps, kbps, mbps, gbps, tbps are bytes per second)`
	m := rateRE.FindStringSubmatch(v)
	if m == nil {
		return 0, fieldErr(field, v, want)
	}
	mult, ok := rateUnits[strings.ToLower(m[3])]
	if !ok {
		return 0, fieldErr(field, v, want)
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return 0, fieldErr(field, v, want)
	}
	r.Mul(r, new(big.Rat).SetUint64(mult))
	if r.Cmp(new(big.Rat).SetUint64(MinRate)) < 0 || r.Cmp(new(big.Rat).SetUint64(MaxRate)) > 0 {
		return 0, fieldErr(field, v, "outside 8bit to 100gbit")
	}
	if !r.IsInt() {
		return 0, fieldErr(field, v, "not a whole number of bits per second")
	}
	return r.Num().Uint64(), nil
}

// IsZero reports whether the Params impair nothing.
func (p Params) IsZero() bool { return p == Params{} }

// String formats the Params as tc would, e.g. "delay 20ms loss 0.5% rate
// 100mbit"; "" for nothing.
func (p Params) String() string {
	var parts []string
	if p.Delay > 0 {
		parts = append(parts, "delay "+p.Delay.String())
	}
	if p.Jitter > 0 {
		parts = append(parts, "jitter "+p.Jitter.String())
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"loss", p.Loss}, {"corrupt", p.Corrupt}, {"duplicate", p.Duplicate}, {"reorder", p.Reorder}} {
		if f.v > 0 {
			parts = append(parts, f.name+" "+FormatPercent(f.v))
		}
	}
	if p.Rate > 0 {
		parts = append(parts, "rate "+formatRate(p.Rate))
	}
	return strings.Join(parts, " ")
}

// formatPercent writes a fraction as a percentage with at most
// PercentDecimals decimals.
// FormatPercent writes a fraction as a percentage the way a Spec spells it
// (0.3 → "30%").
func FormatPercent(f float64) string {
	s := strconv.FormatFloat(f*100, 'f', PercentDecimals, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

// formatRate writes bits per second in the largest exact tc unit.
func formatRate(bps uint64) string {
	for _, u := range []struct {
		name string
		mult uint64
	}{{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if bps%u.mult == 0 {
			return strconv.FormatUint(bps/u.mult, 10) + u.name
		}
	}
	return strconv.FormatUint(bps, 10) + "bit"
}
