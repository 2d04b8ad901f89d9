// Package modelgen writes the generated models of the model repository:
// ONNX graphs with deterministic weights, their config.pbtxt and labels.json.
// The same release writes the same bytes on every run.
//
// A model directory is replaced atomically (built next to it, then renamed),
// so a reader sees either no model, the previous one or the complete new one.
package modelgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
)

// Names of the generated models.
const (
	ResNet50 = "resnet50"
	Colors   = "colors"
	Squares  = "squares"
)

const (
	// markerVersion changes whenever the generator's output changes, so
	// Ensure replaces models written by an older generator.
	markerVersion = "2"
	// markerName is written last into a model directory: its presence says
	// the directory is complete and current.
	markerName = ".modelgen-v" + markerVersion
	// modelVersion is the version directory the ONNX file is written to.
	modelVersion = "1"
	// modelFile is the ONNX file name inside a version directory.
	modelFile = "model.onnx"
	// tmpPrefix and oldPrefix name the hidden work directories inside the
	// repository: models being built and models being replaced.
	tmpPrefix = ".modelgen-tmp-"
	oldPrefix = ".modelgen-old-"
	// dirPerm and filePerm are the permissions of what is written.
	dirPerm  = 0o755
	filePerm = 0o644
	// maxInstallAttempts bounds how often a finished model is renamed into
	// place when other writers keep replacing the target concurrently.
	maxInstallAttempts = 5
)

// builders makes each generated model's graph, in the order of Names.
var builders = []struct {
	name  string
	build func() *onnxpb.ModelProto
}{
	{Colors, buildColors},
	{ResNet50, buildResNet50},
	{Squares, buildSquares},
}

// Names returns the names of all generated models.
func Names() []string {
	names := make([]string, len(builders))
	for i, b := range builders {
		names[i] = b.name
	}
	return names
}

// Result says what Build did for one model.
type Result struct {
	Name string
	// Dir is the model's directory.
	Dir string
	// Generated is false when a complete, current model was kept.
	Generated bool
}

// Generate writes the named models (all when none are named) into dir,
// replacing what is there.
func Generate(dir string, names ...string) error {
	_, err := Build(dir, true, names...)
	return err
}

// Ensure writes the named models (all when none are named) into dir unless a
// complete model from this generator version is already there. Concurrent
// calls, from goroutines or processes, on the same dir are safe.
func Ensure(dir string, names ...string) error {
	_, err := Build(dir, false, names...)
	return err
}

// Build writes the named models (all when none are named) into dir. With
// force false a complete, current model is kept.
func Build(dir string, force bool, names ...string) ([]Result, error) {
	if len(names) == 0 {
		names = Names()
	}
	for _, n := range names {
		if !slices.Contains(Names(), n) {
			return nil, fmt.Errorf("unknown model %q (known: %s)", n, strings.Join(Names(), ", "))
		}
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("create model repository: %w", err)
	}
	unlock, err := lockRepository(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	removeLeftovers(dir)

	var results []Result
	for _, b := range builders {
		if !slices.Contains(names, b.name) {
			continue
		}
		target := filepath.Join(dir, b.name)
		res := Result{Name: b.name, Dir: target}
		if force || !complete(target) {
			if err := install(dir, b.name, b.build, force); err != nil {
				return results, fmt.Errorf("generate %s: %w", b.name, err)
			}
			res.Generated = true
		}
		results = append(results, res)
	}
	return results, nil
}

// complete reports whether modelDir holds a model written completely by
// this generator version.
func complete(modelDir string) bool {
	_, err := os.Stat(filepath.Join(modelDir, markerName))
	return err == nil
}

// install builds the model in a work directory inside dir and renames it to
// dir/name. Without force, a complete model that another writer put in
// place meanwhile is kept.
func install(dir, name string, build func() *onnxpb.ModelProto, force bool) error {
	tmp, err := os.MkdirTemp(dir, tmpPrefix+name+"-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(tmp) // Gone already once renamed into place.
	if err := writeModel(tmp, name, build()); err != nil {
		return err
	}

	target := filepath.Join(dir, name)
	var previous []string // Replaced models, deleted once the new one is in.
	defer func() {
		for _, p := range previous {
			_ = os.RemoveAll(p)
		}
	}()
	for range maxInstallAttempts {
		err := os.Rename(tmp, target)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			return fmt.Errorf("install: %w", err)
		}
		if !force && complete(target) {
			return nil
		}
		// Move the existing directory aside, then try again.
		old, err := os.MkdirTemp(dir, oldPrefix+name+"-")
		if err != nil {
			return fmt.Errorf("create work directory: %w", err)
		}
		previous = append(previous, old)
		if err := os.Rename(target, filepath.Join(old, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("move previous model aside: %w", err)
		}
	}
	return fmt.Errorf("install: %s kept changing under concurrent writers", target)
}

// writeModel writes config.pbtxt, labels.json and 1/model.onnx into dir,
// then the completeness marker.
func writeModel(dir, name string, m *onnxpb.ModelProto) error {
	cfg, err := Config(name)
	if err != nil {
		return err
	}
	cfgText, err := marshalConfig(cfg)
	if err != nil {
		return err
	}
	labels, err := Labels(name)
	if err != nil {
		return err
	}
	labelsJSON, err := json.MarshalIndent(labels, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal labels: %w", err)
	}
	onnxBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("marshal ONNX model: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, modelVersion), dirPerm); err != nil {
		return fmt.Errorf("create version directory: %w", err)
	}
	files := []struct {
		path string
		data []byte
	}{
		{filepath.Join(dir, "config.pbtxt"), cfgText},
		{filepath.Join(dir, labelsFile), append(labelsJSON, '\n')},
		{filepath.Join(dir, modelVersion, modelFile), onnxBytes},
		{filepath.Join(dir, markerName), []byte(producerName + " " + markerVersion + "\n")},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, filePerm); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Base(f.path), err)
		}
	}
	// The work directory is private to MkdirTemp; the repository's model
	// directories are readable like any other.
	if err := os.Chmod(dir, dirPerm); err != nil {
		return fmt.Errorf("set permissions: %w", err)
	}
	return nil
}

// removeLeftovers deletes work directories that an interrupted run left in
// dir. It is called with the repository locked, so no other writer owns
// them; where the repository cannot be locked, nothing is removed.
func removeLeftovers(dir string) {
	if !canLock {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) || strings.HasPrefix(e.Name(), oldPrefix) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
