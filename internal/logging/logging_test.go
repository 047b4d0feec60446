package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lines decodes JSON log lines.
func lines(t *testing.T, data string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(data), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestNewLogsAtItsLevelAndUpAndJunkMeansInfo(t *testing.T) {
	for _, tc := range []struct {
		level string
		want  []string // messages that get through, of debug/info/warn/error
	}{
		{"debug", []string{"d", "i", "w", "e"}},
		{"info", []string{"i", "w", "e"}},
		{"warn", []string{"w", "e"}},
		{"error", []string{"e"}},
		{"", []string{"i", "w", "e"}},
		{"verbose", []string{"i", "w", "e"}},
	} {
		t.Run(tc.level, func(t *testing.T) {
			var buf bytes.Buffer
			log := New(&buf, tc.level)
			log.Debug("d")
			log.Info("i")
			log.Warn("w")
			log.Error("e")
			var got []string
			for _, l := range lines(t, buf.String()) {
				got = append(got, l["msg"].(string))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("level %q logged %v, want %v", tc.level, got, tc.want)
			}
		})
	}
}

func TestOpenAppendsJSONLinesWithPID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ratchet.log")
	for _, msg := range []string{"first", "second"} {
		log, closeLog := Open(path, "info")
		log.Info(msg, "container", "c1")
		closeLog()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := lines(t, string(data))
	if len(got) != 2 || got[0]["msg"] != "first" || got[1]["msg"] != "second" {
		t.Fatalf("log = %s, want the two lines appended in order", data)
	}
	for _, l := range got {
		if l["pid"] != float64(os.Getpid()) || l["container"] != "c1" || l["level"] != "INFO" {
			t.Errorf("line %v: want pid %d, the container field and level INFO", l, os.Getpid())
		}
	}
	if fi, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestOpenWithoutFileDiscards(t *testing.T) {
	stderr := captureStderr(t)
	log, closeLog := Open("", "debug")
	log.Error("nowhere")
	closeLog()
	if out := stderr(); out != "" {
		t.Errorf("a discarding log wrote to stderr: %q", out)
	}
	if log.Enabled(t.Context(), slog.LevelError) {
		t.Error("a discarding logger says it is enabled")
	}
}

func TestOpenUnopenableFileFallsBackToStderr(t *testing.T) {
	stderr := captureStderr(t)
	path := filepath.Join(t.TempDir(), "no-such-dir", "ratchet.log")
	log, closeLog := Open(path, "warn")
	log.Warn("still heard")
	log.Info("below level")
	closeLog()
	got := lines(t, stderr())
	if len(got) != 1 || got[0]["msg"] != "still heard" {
		t.Fatalf("stderr got %v, want the one warning", got)
	}
	if e, _ := got[0]["logFileError"].(string); !strings.Contains(e, "no-such-dir") {
		t.Errorf("logFileError = %q, want the open error naming the path", e)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("log file was created")
	}
}

// captureStderr points os.Stderr at a file until the test ends; the func
// returns what was written so far.
func captureStderr(t *testing.T) func() string {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = f
	t.Cleanup(func() { os.Stderr = saved; f.Close() })
	return func() string {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}
