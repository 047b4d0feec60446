package netem

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParamsParsesEveryUnit(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want Params
	}{
		{"empty", Spec{}, Params{}},
		{"delay ms", Spec{Delay: "20ms"}, Params{Delay: 20 * time.Millisecond}},
		{"delay fraction", Spec{Delay: "1.5ms"}, Params{Delay: 1500 * time.Microsecond}},
		{"delay us", Spec{Delay: "250us"}, Params{Delay: 250 * time.Microsecond}},
		{"delay µs", Spec{Delay: "250µs"}, Params{Delay: 250 * time.Microsecond}},
		{"delay s", Spec{Delay: "2s"}, Params{Delay: 2 * time.Second}},
		{"delay max", Spec{Delay: "60s"}, Params{Delay: 60 * time.Second}},
		{"delay zero", Spec{Delay: "0ms"}, Params{}},
		{"jitter", Spec{Delay: "20ms", Jitter: "5ms"}, Params{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}},
		{"loss", Spec{Loss: "0.5%"}, Params{Loss: 0.005}},
		{"loss 100", Spec{Loss: "100%"}, Params{Loss: 1}},
		{"loss finest", Spec{Loss: "0.0001%"}, Params{Loss: 0.000001}},
		{"loss zero", Spec{Loss: "0%"}, Params{}},
		{"corrupt", Spec{Corrupt: "0.1%"}, Params{Corrupt: 0.001}},
		{"duplicate", Spec{Duplicate: "1%"}, Params{Duplicate: 0.01}},
		{"reorder", Spec{Delay: "10ms", Reorder: "25%"}, Params{Delay: 10 * time.Millisecond, Reorder: 0.25}},
		{"rate mbit", Spec{Rate: "100mbit"}, Params{Rate: 100_000_000}},
		{"rate Mbit", Spec{Rate: "100Mbit"}, Params{Rate: 100_000_000}},
		{"rate kbit", Spec{Rate: "512kbit"}, Params{Rate: 512_000}},
		{"rate gbit", Spec{Rate: "1gbit"}, Params{Rate: 1_000_000_000}},
		{"rate fraction", Spec{Rate: "1.5mbit"}, Params{Rate: 1_500_000}},
		{"rate bit", Spec{Rate: "8bit"}, Params{Rate: 8}},
		{"rate bps is bytes", Spec{Rate: "1bps"}, Params{Rate: 8}},
		{"rate kbps is bytes", Spec{Rate: "125kbps"}, Params{Rate: 1_000_000}},
		{"rate mbps is bytes", Spec{Rate: "1mbps"}, Params{Rate: 8_000_000}},
		{"rate gbps is bytes", Spec{Rate: "12.5gbps"}, Params{Rate: 100_000_000_000}},
		{"rate max", Spec{Rate: "100gbit"}, Params{Rate: 100_000_000_000}},
		{"rate tbit", Spec{Rate: "0.1tbit"}, Params{Rate: 100_000_000_000}},
		{"all", Spec{Delay: "20ms", Jitter: "5ms", Loss: "0.5%", Rate: "100mbit", Corrupt: "0.1%", Duplicate: "1%", Reorder: "25%"},
			Params{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.005, Rate: 100_000_000, Corrupt: 0.001, Duplicate: 0.01, Reorder: 0.25}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.Params()
			if err != nil {
				t.Fatalf("Params: %v", err)
			}
			if err := tt.spec.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !approxParams(got, tt.want) {
				t.Errorf("Params = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// approxParams compares Params with float tolerance for the probabilities.
func approxParams(a, b Params) bool {
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return near(a.Loss, b.Loss) && near(a.Corrupt, b.Corrupt) && near(a.Duplicate, b.Duplicate) && near(a.Reorder, b.Reorder) &&
		a.Rate == b.Rate && a.Delay == b.Delay && a.Jitter == b.Jitter
}

func TestValidateRejectsNamingFieldAndValue(t *testing.T) {
	tests := []struct {
		spec  Spec
		field string
		value string
	}{
		{Spec{Delay: "20"}, "netem.delay", `"20"`},
		{Spec{Delay: "-5ms"}, "netem.delay", `"-5ms"`},
		{Spec{Delay: "61s"}, "netem.delay", "above the maximum"},
		{Spec{Delay: "1m"}, "netem.delay", `"1m"`},
		{Spec{Delay: "1h"}, "netem.delay", `"1h"`},
		{Spec{Delay: "1.0001ms"}, "netem.delay", "finer than a microsecond"},
		{Spec{Delay: "20 ms"}, "netem.delay", `"20 ms"`},
		{Spec{Delay: " 20ms"}, "netem.delay", `" 20ms"`},
		{Spec{Delay: "20ms\n"}, "netem.delay", `"20ms\n"`},
		{Spec{Jitter: "5ms"}, "netem.jitter", "needs netem.delay"},
		{Spec{Delay: "0ms", Jitter: "5ms"}, "netem.jitter", "needs netem.delay"},
		{Spec{Jitter: "x"}, "netem.jitter", `"x"`},
		{Spec{Loss: "0.5"}, "netem.loss", `"0.5"`},
		{Spec{Loss: "101%"}, "netem.loss", "above 100%"},
		{Spec{Loss: "100.0001%"}, "netem.loss", "above 100%"},
		{Spec{Loss: "-1%"}, "netem.loss", `"-1%"`},
		{Spec{Loss: "0.00001%"}, "netem.loss", "at most 4 decimals"},
		{Spec{Loss: "1e2%"}, "netem.loss", `"1e2%"`},
		{Spec{Loss: "NaN%"}, "netem.loss", `"NaN%"`},
		{Spec{Loss: "%"}, "netem.loss", `"%"`},
		{Spec{Loss: ".5%"}, "netem.loss", `".5%"`},
		{Spec{Corrupt: "abc"}, "netem.corrupt", `"abc"`},
		{Spec{Duplicate: "200%"}, "netem.duplicate", "above 100%"},
		{Spec{Reorder: "25%"}, "netem.reorder", "needs netem.delay"},
		{Spec{Rate: "100"}, "netem.rate", `"100"`},
		{Spec{Rate: "100mb"}, "netem.rate", `"100mb"`},
		{Spec{Rate: "100mibit"}, "netem.rate", `"100mibit"`},
		{Spec{Rate: "7bit"}, "netem.rate", "outside 8bit to 100gbit"},
		{Spec{Rate: "0mbit"}, "netem.rate", "outside 8bit to 100gbit"},
		{Spec{Rate: "101gbit"}, "netem.rate", "outside 8bit to 100gbit"},
		{Spec{Rate: "1tbit"}, "netem.rate", "outside 8bit to 100gbit"},
		{Spec{Rate: "999999999999tbps"}, "netem.rate", "outside 8bit to 100gbit"},
		{Spec{Rate: "8.5bit"}, "netem.rate", "not a whole number"},
		{Spec{Rate: "-1mbit"}, "netem.rate", `"-1mbit"`},
		{Spec{Rate: "1e6bit"}, "netem.rate", `"1e6bit"`},
		{Spec{Rate: strings.Repeat("1", 30) + "mbit"}, "netem.rate", "longer than 32 bytes"},
		{Spec{Loss: strings.Repeat("0", 40) + "%"}, "netem.loss", "longer than 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.field+" "+tt.value, func(t *testing.T) {
			err := tt.spec.Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want an error", tt.spec)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			for _, want := range []string{tt.field + ": ", tt.value} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if _, perr := tt.spec.Params(); perr == nil {
				t.Errorf("Params accepted what Validate rejected")
			}
		})
	}
}

func TestValidateReportsEveryBadField(t *testing.T) {
	err := Spec{Delay: "x", Loss: "y", Rate: "z"}.Validate()
	if err == nil {
		t.Fatal("Validate = nil")
	}
	for _, f := range []string{"netem.delay", "netem.loss", "netem.rate"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
}

func TestSpecIsZero(t *testing.T) {
	if !(Spec{}).IsZero() {
		t.Error("Spec{}.IsZero() = false")
	}
	if (Spec{Loss: "0%"}).IsZero() {
		t.Error(`Spec{Loss:"0%"}.IsZero() = true: it declares something (that impairs nothing)`)
	}
}

func TestParamsString(t *testing.T) {
	p := Params{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.005, Corrupt: 0.001, Duplicate: 0.01, Reorder: 0.25, Rate: 100_000_000}
	want := "delay 20ms jitter 5ms loss 0.5% corrupt 0.1% duplicate 1% reorder 25% rate 100mbit"
	if got := p.String(); got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := (Params{Rate: 1_500_000}).String(); got != "rate 1500kbit" {
		t.Errorf("String = %q", got)
	}
	if got := (Params{Rate: 12}).String(); got != "rate 12bit" {
		t.Errorf("String = %q", got)
	}
	if got := (Params{}).String(); got != "" {
		t.Errorf("String of zero = %q", got)
	}
}
