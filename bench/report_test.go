// Package bench measures ratchet against its anchors through a real CNI
// client, in one run on one machine: `make bench` runs every benchmark once
// and prints one table, also written as JSON to bench/results/latest.json.
package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ratchet-cni/ratchet/internal/testenv"
)

// row is one line of the report.
type row struct {
	Order  int     `json:"-"`
	Name   string  `json:"name"`
	Median string  `json:"median,omitempty"`
	P95    string  `json:"p95,omitempty"`
	Value  string  `json:"value,omitempty"`
	Ratio  float64 `json:"ratio,omitempty"`
	Target string  `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
	N      int     `json:"n,omitempty"`
}

var (
	reportMu sync.Mutex
	report   []row
)

func record(r row) {
	reportMu.Lock()
	defer reportMu.Unlock()
	report = append(report, r)
}

func met(ok bool) *bool { return &ok }

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	if len(report) > 0 {
		printReport()
	}
	os.Exit(code)
}

func printReport() {
	sort.SliceStable(report, func(i, j int) bool { return report[i].Order < report[j].Order })
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nmeasure\tmedian\tp95\tvalue\tratio\ttarget\tmet\tn")
	for _, r := range report {
		ratio, ok := "", ""
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		if r.Met != nil {
			ok = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Name, r.Median, r.P95, r.Value, ratio, r.Target, ok, r.N)
	}
	w.Flush()
	out := struct {
		Time    time.Time `json:"time"`
		Machine string    `json:"machine"`
		Rows    []row     `json:"rows"`
	}{time.Now().UTC(), machine(), report}
	data, _ := json.MarshalIndent(out, "", "  ")
	dir := filepath.Join("results")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "latest.json"), append(data, '\n'), 0o644)
	}
}

func machine() string {
	cpu, _ := os.ReadFile("/proc/cpuinfo")
	model := ""
	for _, l := range strings.Split(string(cpu), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, model, _ = strings.Cut(l, ": ")
			break
		}
	}
	n := strings.Count(string(cpu), "processor\t:")
	return fmt.Sprintf("%d × %s", n, model)
}

// stats returns the median and 95th percentile.
func stats(ds []time.Duration) (med, p95 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, (len(s)*95+99)/100-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
