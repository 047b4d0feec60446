// Package metrics is the node agent's Prometheus instrumentation: one
// registry per agent (never the global one) with the families below, all
// prefixed ratchet_, and the HTTP server that serves them on /metrics next
// to /healthz.
//
//   - ratchet_links{namespace,state}: this host's links by state (pending,
//     wired, failed; a state outside those is counted as "unknown"), read
//     at scrape time from the agent's watched copies. A link counts on
//     every host that has one of its ends.
//   - ratchet_links_down{namespace}: of those, the links set down
//     (`ratchetctl link down`), whatever their state: admin state is a
//     separate family so that ratchet_links sums to the number of links.
//   - ratchet_impairments{state="applied"|"not_applied"}: this host's link
//     ends that carry an impairment, by whether it is fully in force.
//   - ratchet_cni_duration_seconds{command}: how long the agent took to
//     handle the plugin's ADD, DEL and CHECK (successful or not).
//   - ratchet_cni_errors_total{command,code}: those that failed, by CNI code.
//   - ratchet_wiring_errors_total{reason}: link ends that could not be built.
//   - ratchet_repoints_total{namespace}: vxlan ends re-pointed at a peer's
//     new host.
//   - ratchet_etcd_relists_total: watches of etcd that broke and were
//     replaced by a fresh list (etcd restarted or unreachable for a while).
//
// plus the standard go_* and process_* families.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ratchet-cni/ratchet/internal/pairing"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Commands whose handling is measured.
var commands = map[string]bool{"ADD": true, "DEL": true, "CHECK": true}

// reasons are the classes pairing.Observer.WiringFailed gives; anything
// else is counted as "other", so that the label stays bounded.
var reasons = map[string]bool{"conflict": true, "mtu": true, "netns_gone": true, "exists": true, "other": true}

// cniBuckets span 1 ms to 10 s: a DEL of a delegation-only pod takes a
// millisecond, an ADD that waits for etcd seconds.
var cniBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// maxLabelLen bounds a label value taken from the records (a namespace):
// longer values are cut, invalid UTF-8 is replaced.
const maxLabelLen = 253

// LinkSource returns the links with an end on this host, across every
// configuration the agent serves (see pairing.Manager.Links). It is called
// at every scrape and must not block for long.
type LinkSource func() []pairing.LinkSummary

// Metrics is the agent's registry and the collectors it updates. It
// implements pairing.Observer; its methods are safe for concurrent use.
type Metrics struct {
	reg          *prometheus.Registry
	cniDuration  *prometheus.HistogramVec
	cniErrors    *prometheus.CounterVec
	wiringErrors *prometheus.CounterVec
	repoints     *prometheus.CounterVec
	relists      prometheus.Counter
}

var _ pairing.Observer = (*Metrics)(nil)

// New builds a registry with every family; links feeds the link and
// impairment gauges (nil: none).
func New(links LinkSource) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		cniDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ratchet_cni_duration_seconds",
			Help:    "Time the agent took to handle the plugin's ADD, DEL and CHECK requests, failed ones included.",
			Buckets: cniBuckets,
		}, []string{"command"}),
		cniErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ratchet_cni_errors_total",
			Help: "The plugin's requests the agent answered with an error, by command and CNI error code.",
		}, []string{"command", "code"}),
		wiringErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ratchet_wiring_errors_total",
			Help: "Link ends this host could not build, by reason (conflict, mtu, netns_gone, exists, other).",
		}, []string{"reason"}),
		repoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ratchet_repoints_total",
			Help: "Vxlan ends this host pointed at their peer's new host, by namespace.",
		}, []string{"namespace"}),
		relists: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ratchet_etcd_relists_total",
			Help: "Times a watch of etcd broke and the agent read all records again (compaction, or a watch error the client did not resume on its own; a v3 client resumes silently after an etcd restart).",
		}),
	}
	if links == nil {
		links = func() []pairing.LinkSummary { return nil }
	}
	m.reg.MustRegister(m.cniDuration, m.cniErrors, m.wiringErrors, m.repoints, m.relists, newLinkCollector(links),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Gatherer is the registry, for tests and other handlers.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the registry in the Prometheus text (or negotiated)
// format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Timeout: 10 * time.Second})
}

// ObserveCNI records one handled request of the plugin: its duration and,
// when code is not 0, an error with that CNI code. Commands other than
// ADD, DEL and CHECK are not measured.
func (m *Metrics) ObserveCNI(command string, took time.Duration, code uint) {
	if !commands[command] {
		return
	}
	m.cniDuration.WithLabelValues(command).Observe(took.Seconds())
	if code != 0 {
		m.cniErrors.WithLabelValues(command, strconv.FormatUint(uint64(code), 10)).Inc()
	}
}

// Repointed implements pairing.Observer.
func (m *Metrics) Repointed(namespace string) {
	m.repoints.WithLabelValues(labelValue(namespace)).Inc()
}

// WiringFailed implements pairing.Observer.
func (m *Metrics) WiringFailed(reason string) {
	if !reasons[reason] {
		reason = "other"
	}
	m.wiringErrors.WithLabelValues(reason).Inc()
}

// Relisted implements pairing.Observer.
func (m *Metrics) Relisted() { m.relists.Inc() }

// labelValue makes s a valid, bounded label value.
func labelValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxLabelLen {
		return s
	}
	s = s[:maxLabelLen]
	for !utf8.ValidString(s) { // a rune cut in the middle
		s = s[:len(s)-1]
	}
	return s
}

// linkCollector computes the link and impairment gauges at scrape time.
type linkCollector struct {
	source                   LinkSource
	links, down, impairments *prometheus.Desc
}

func newLinkCollector(source LinkSource) *linkCollector {
	return &linkCollector{
		source: source,
		links: prometheus.NewDesc("ratchet_links",
			"Links with an end on this host, by namespace and state (pending, wired, failed).",
			[]string{"namespace", "state"}, nil),
		down: prometheus.NewDesc("ratchet_links_down",
			"Links with an end on this host that are set down (ratchetctl link down), by namespace.",
			[]string{"namespace"}, nil),
		impairments: prometheus.NewDesc("ratchet_impairments",
			"This host's link ends that carry an impairment, by whether it is fully applied.",
			[]string{"state"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *linkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.links
	ch <- c.down
	ch <- c.impairments
}

// nsCount is one namespace's links by state, and how many are down.
type nsCount struct {
	byState map[string]int
	down    int
}

// Collect implements prometheus.Collector: every namespace with links
// gets all three states (0 included) and its down count; the impairment
// gauge is always there.
func (c *linkCollector) Collect(ch chan<- prometheus.Metric) {
	perNS := map[string]*nsCount{}
	applied, notApplied := 0, 0
	for _, l := range c.source() {
		ns := labelValue(l.Namespace)
		n := perNS[ns]
		if n == nil {
			n = &nsCount{byState: map[string]int{}}
			perNS[ns] = n
		}
		switch l.State {
		case store.LinkPending, store.LinkWired, store.LinkFailed:
			n.byState[string(l.State)]++
		default:
			n.byState["unknown"]++
		}
		if l.Down {
			n.down++
		}
		na := min(max(l.NotApplied, 0), max(l.Impaired, 0))
		notApplied += na
		applied += max(l.Impaired, 0) - na
	}
	for ns, n := range perNS {
		for _, st := range []string{string(store.LinkPending), string(store.LinkWired), string(store.LinkFailed)} {
			ch <- prometheus.MustNewConstMetric(c.links, prometheus.GaugeValue, float64(n.byState[st]), ns, st)
		}
		if u := n.byState["unknown"]; u > 0 {
			ch <- prometheus.MustNewConstMetric(c.links, prometheus.GaugeValue, float64(u), ns, "unknown")
		}
		ch <- prometheus.MustNewConstMetric(c.down, prometheus.GaugeValue, float64(n.down), ns)
	}
	ch <- prometheus.MustNewConstMetric(c.impairments, prometheus.GaugeValue, float64(applied), "applied")
	ch <- prometheus.MustNewConstMetric(c.impairments, prometheus.GaugeValue, float64(notApplied), "not_applied")
}
