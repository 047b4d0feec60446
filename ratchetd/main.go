// Command ratchetd is ratchet's node agent: one per host, it owns every
// link of the host's ratchet pods after ADD and serves the thin plugin on a
// unix socket (see internal/agent).
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/ratchet-cni/ratchet/internal/agent"
	"github.com/ratchet-cni/ratchet/internal/config"
	"github.com/ratchet-cni/ratchet/internal/logging"
)

func main() {
	socket := flag.String("socket", config.DefaultAgentSocket, "unix socket to serve the plugin on")
	netconf := flag.String("netconf", "", "netconf file to start with (its logFile is the default log)")
	logFile := flag.String("log-file", "", "log file (default: the netconf's logFile, else stderr)")
	logLevel := flag.String("log-level", "", "debug, info, warn or error (default: the netconf's)")
	host := flag.String("host", "", "host name (default: the netconfs' host.name)")
	onDemand := flag.Bool("on-demand", false, "exit when the host has no ratchet pods left")
	metricsAddr := flag.String("metrics-address", defaultMetricsAddress,
		"host:port serving /metrics and /healthz; empty: none (an on-demand agent serves none unless the flag is given)")
	flag.Parse()
	if *onDemand && !flagGiven("metrics-address") {
		*metricsAddr = "" // several on-demand agents may share a netns: no port to fight over
	}
	log, closeLog := openLog(*netconf, *logFile, *logLevel)
	// client-go logs through klog: into the agent's JSON log, not stderr.
	klog.SetSlogLogger(log.With("library", "client-go"))
	defer closeLog()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts := agent.Options{Socket: *socket, Netconf: *netconf, Host: *host, OnDemand: *onDemand, Version: version(), Log: log,
		MetricsAddress: *metricsAddr}
	if err := agent.Run(ctx, opts); err != nil {
		log.Error("agent failed", "err", err)
		fmt.Fprintln(os.Stderr, "ratchetd:", err)
		closeLog()
		os.Exit(1)
	}
}

// defaultMetricsAddress is loopback only: exposing the metrics further is
// the operator's choice.
const defaultMetricsAddress = "127.0.0.1:9465"

// flagGiven reports whether the command line set the flag.
func flagGiven(name string) bool {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// openLog logs JSON to the flag's file, else the netconf's logFile, else
// stderr.
func openLog(netconf, file, level string) (*slog.Logger, func()) {
	if netconf != "" {
		if data, err := os.ReadFile(netconf); err == nil {
			if conf, err := config.Load(data); err == nil {
				file = cmp.Or(file, conf.LogFile)
				level = cmp.Or(level, conf.LogLevel)
			}
		}
	}
	if file == "" {
		return logging.New(os.Stderr, level).With("component", "ratchetd"), func() {}
	}
	log, closeLog := logging.Open(file, level)
	return log.With("component", "ratchetd"), closeLog
}

// version is the module version and VCS revision the binary was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
	}
	return v
}
