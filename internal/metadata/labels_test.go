package metadata

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// scriptsDir holds the user-facing label files.
var scriptsDir = filepath.Join("..", "..", "scripts")

func TestScriptsLabelFilesParseIntoTheSeedPods(t *testing.T) {
	for file, want := range map[string]*Pod{
		"primary.label": seedPrimaryPod,
		"pair.label":    {Name: "pair-pod", Namespace: "default", Expects: seedPairPod.Expects, TargetPod: "pair-pod", TargetContainer: "pair-pod", PublicIP: "1.1.1.1"},
	} {
		t.Run(file, func(t *testing.T) {
			labels, err := ReadLabelFile(filepath.Join(scriptsDir, file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(labels, "eth0")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Parse(%s) = %+v\nwant %+v", file, got, want)
			}
		})
	}
}

func TestPrimaryLabelFileIsTheSeeds(t *testing.T) {
	labels, err := ReadLabelFile(filepath.Join(scriptsDir, "primary.label"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(labels, primaryLabels()) {
		t.Fatalf("primary.label = %v\nwant the seed's %v", labels, primaryLabels())
	}
}

func TestParseLabelFileLikeDocker(t *testing.T) {
	in := "\xEF\xBB\xBF# comment\n" +
		"\n" +
		"   \t\n" +
		"  ratchet=true\n" +
		"   # indented comment\n" +
		"a=b=c\n" +
		"spaces= kept  \n" +
		"quoted=\"q\"\n" +
		"empty=\n" +
		"novalue\n" +
		"dup=1\n" +
		"dup=2\n" +
		"crlf=x\r\n" +
		"last=no newline"
	got, err := ParseLabelFile(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ratchet": "true", "a": "b=c", "spaces": " kept  ", "quoted": `"q"`,
		"empty": "", "dup": "2", "crlf": "x", "last": "no newline",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseLabelFile = %q\nwant %q", got, want)
	}
}

func TestParseLabelFileRejects(t *testing.T) {
	for name, in := range map[string]string{
		"space in key":  "rat chet=true\n",
		"tab in key":    "a\tb=c\n",
		"empty key":     "=true\n",
		"not UTF-8":     "a=\xff\n",
		"line too long": "a=" + strings.Repeat("x", 70000) + "\n",
	} {
		if got, err := ParseLabelFile(strings.NewReader(in)); err == nil {
			t.Errorf("%s: ParseLabelFile = %v, want an error", name, got)
		}
	}
	if _, err := ReadLabelFile(filepath.Join(t.TempDir(), "missing.label")); err == nil {
		t.Error("ReadLabelFile of a missing file: no error")
	}
}

// FuzzParseLabelFile: the label file reader must not panic, and what it
// reads must parse or fail with an *Error.
func FuzzParseLabelFile(f *testing.F) {
	f.Add("# c\nratchet=true\nratchet.pod_name=a\n")
	f.Add("\xEF\xBB\xBFratchet=true\r\nratchet.pod_name=a b\n=x\n")
	f.Add("ratchet=true\nratchet.pod_name=a\nratchet.links=[{\"peer\":\"b\"}]\n")
	f.Fuzz(func(t *testing.T, in string) {
		labels, err := ParseLabelFile(strings.NewReader(in))
		if err != nil {
			return
		}
		for k := range labels {
			if k == "" || strings.ContainsAny(k, " \t\n") {
				t.Fatalf("bad key %q accepted", k)
			}
		}
		_, _ = Parse(labels, master)
	})
}
