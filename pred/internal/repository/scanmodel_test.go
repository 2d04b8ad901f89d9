package repository

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScanModel(t *testing.T) {
	repo := writeRepo(t, map[string]modelDir{
		"colors": {config: configText("colors"), labels: fourLabels, versions: []string{"1", "2"}},
		"broken": {config: configText("other"), labels: fourLabels, versions: []string{"1"}},
	})
	outside := t.TempDir()
	mustWrite(t, filepath.Join(outside, "secret"), "x")
	if err := os.Symlink(outside, filepath.Join(repo, "escape")); err != nil {
		t.Fatal(err)
	}

	m, err := ScanModel(repo, "colors")
	if err != nil || m.Err != nil || len(m.Versions) != 1 || m.Versions[0].Number != 2 || len(m.Labels) != 4 {
		t.Fatalf("ScanModel(colors) = %+v, %v", m, err)
	}
	if m, err := ScanModel(repo, "broken"); err != nil || m.Err == nil || !strings.Contains(m.Err.Error(), `name is "other"`) {
		t.Errorf("ScanModel(broken) = %+v, %v; want the model's error in Err", m, err)
	}
	if _, err := ScanModel(repo, "absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ScanModel(absent) = %v, want fs.ErrNotExist", err)
	}
	if m, err := ScanModel(repo, "escape"); err != nil || m.Err == nil {
		t.Errorf("ScanModel(escape) = %+v, %v; want an error for a link leaving the repository", m, err)
	}
	for _, name := range []string{"..", "../colors", "colors/1", "", ".hidden", `a\b`} {
		if _, err := ScanModel(repo, name); err == nil || !strings.Contains(err.Error(), "invalid model name") {
			t.Errorf("ScanModel(%q) = %v, want invalid model name", name, err)
		}
	}
}
