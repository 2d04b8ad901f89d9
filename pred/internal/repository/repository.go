// Package repository reads pred's model repository: one directory per
// model holding its configuration (config.pbtxt or config.json), an optional
// labels file and integer-named version directories with a model.onnx each.
// It parses and validates what it finds and picks the versions to serve;
// it never touches ONNX Runtime.
//
//	<repository>/<model>/config.pbtxt
//	<repository>/<model>/labels.json
//	<repository>/<model>/<version>/model.onnx
//
// Every file is opened through an os.Root on the repository directory, so a
// name, a labels_file or a symbolic link cannot reach outside it.
package repository

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// File names inside a model directory.
const (
	ConfigTextFile = "config.pbtxt"
	ConfigJSONFile = "config.json"
	ModelFile      = "model.onnx"
)

// Limits on what the repository reads into memory.
const (
	// maxConfigBytes bounds a config file; real ones are a few KiB.
	maxConfigBytes = 1 << 20
	// maxLabelsBytes bounds a labels file: 16 MiB holds millions of names.
	maxLabelsBytes = 16 << 20
)

// validName is what a model directory may be called: it starts with a
// letter or digit (so never "." or ".."), holds no path separator and fits
// comfortably in metrics labels and health service names.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ValidName reports whether name is acceptable as a model name.
func ValidName(name string) bool { return validName.MatchString(name) }

// Model is one model directory of the repository.
type Model struct {
	Name string
	// Dir is the model directory's path.
	Dir    string
	Config *predv1.ModelConfig
	// Labels are the contents of the labels file, nil without one.
	Labels []string
	// Versions are the versions the version policy selects, ascending.
	Versions []Version
	// Warnings note entries that were skipped (e.g. a directory "01").
	Warnings []string
	// Err says why the model cannot be served; Config, Labels and
	// Versions may then be incomplete.
	Err error
}

// Version is one selected version of a model.
type Version struct {
	Number int64
	// Path is the version's model.onnx.
	Path string
	// Err says why this version cannot be served (e.g. no model.onnx).
	Err error
}

// Scan reads every model directory of the repository at dir. Problems with
// a model are recorded in its Err; Scan itself fails only when dir cannot be
// read. Models are returned sorted by name; entries whose names start with
// "." and plain files are skipped.
func Scan(dir string) ([]Model, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("model repository %s: %w", dir, err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("model repository: %w", err)
	}
	defer root.Close()
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("model repository %s: %w", abs, err)
	}
	var models []Model
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if e.Type().IsRegular() {
			continue
		}
		models = append(models, loadModel(root, abs, name))
	}
	return models, nil
}

// ScanModel reads one model directory of the repository at dir, as Scan
// does. It fails when name is not a valid model name or the repository has
// no entry by that name (an error wrapping fs.ErrNotExist).
func ScanModel(dir, name string) (Model, error) {
	if !ValidName(name) {
		return Model{}, fmt.Errorf("invalid model name %q: a name starts with a letter or digit and holds only letters, digits, '.', '_' and '-' (at most 128)", name)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Model{}, fmt.Errorf("model repository %s: %w", dir, err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return Model{}, fmt.Errorf("model repository: %w", err)
	}
	defer root.Close()
	if _, err := root.Lstat(name); err != nil {
		return Model{}, fmt.Errorf("model %q is not in the repository %s: %w", name, abs, err)
	}
	return loadModel(root, abs, name), nil
}

// loadModel reads the model directory name inside root.
func loadModel(root *os.Root, dir, name string) Model {
	m := Model{Name: name, Dir: filepath.Join(dir, name)}
	if !ValidName(name) {
		m.Err = fmt.Errorf("invalid model name %q: a name starts with a letter or digit and holds only letters, digits, '.', '_' and '-' (at most 128)", name)
		return m
	}
	info, err := root.Stat(name)
	if err != nil {
		m.Err = fmt.Errorf("model directory: %w", err)
		return m
	}
	if !info.IsDir() {
		m.Err = fmt.Errorf("%s is not a directory", m.Dir)
		return m
	}
	cfg, err := readConfig(root, name)
	if err != nil {
		m.Err = err
		return m
	}
	m.Config = cfg
	if err := Validate(cfg, name); err != nil {
		m.Err = err
		return m
	}
	if cfg.GetLabelsFile() != "" {
		labels, err := readLabels(root, name, cfg)
		if err != nil {
			m.Err = err
			return m
		}
		m.Labels = labels
	}
	m.Versions, m.Warnings, m.Err = selectVersions(root, dir, name, cfg.GetVersionPolicy())
	return m
}

// readConfig reads and parses name/config.pbtxt or name/config.json.
func readConfig(root *os.Root, name string) (*predv1.ModelConfig, error) {
	text, textErr := readLimited(root, path.Join(name, ConfigTextFile), maxConfigBytes)
	js, jsonErr := readLimited(root, path.Join(name, ConfigJSONFile), maxConfigBytes)
	switch {
	case textErr == nil && jsonErr == nil:
		return nil, fmt.Errorf("both %s and %s exist; keep one", ConfigTextFile, ConfigJSONFile)
	case textErr == nil:
		return ParseConfig(text, false)
	case jsonErr == nil:
		return ParseConfig(js, true)
	case !errors.Is(textErr, fs.ErrNotExist):
		return nil, textErr
	case !errors.Is(jsonErr, fs.ErrNotExist):
		return nil, jsonErr
	default:
		return nil, fmt.Errorf("no %s or %s in the model directory", ConfigTextFile, ConfigJSONFile)
	}
}

// ParseConfig parses a ModelConfig from protobuf text, or from protobuf
// JSON when isJSON is set. Unknown fields are errors: a misspelt field must
// not silently fall back to a default.
func ParseConfig(data []byte, isJSON bool) (*predv1.ModelConfig, error) {
	cfg := &predv1.ModelConfig{}
	if isJSON {
		if err := (protojson.UnmarshalOptions{}).Unmarshal(data, cfg); err != nil {
			return nil, fmt.Errorf("parse %s: %w", ConfigJSONFile, err)
		}
		return cfg, nil
	}
	if err := (prototext.UnmarshalOptions{}).Unmarshal(data, cfg); err != nil {
		return nil, fmt.Errorf("parse %s: %w", ConfigTextFile, err)
	}
	return cfg, nil
}

// readLabels reads the JSON list of class names named by cfg.labels_file
// and checks it against the first output.
func readLabels(root *os.Root, name string, cfg *predv1.ModelConfig) ([]string, error) {
	file := cfg.GetLabelsFile()
	if !filepath.IsLocal(file) || strings.Contains(file, `\`) {
		return nil, fmt.Errorf("labels_file %q must be a relative path inside the model directory", file)
	}
	data, err := readLimited(root, path.Join(name, filepath.ToSlash(file)), maxLabelsBytes)
	if err != nil {
		return nil, fmt.Errorf("labels_file: %w", err)
	}
	var labels []string
	if err := json.Unmarshal(data, &labels); err != nil {
		return nil, fmt.Errorf("labels_file %s: want a JSON array of strings: %w", file, err)
	}
	if want := classCount(cfg); want > 0 && int64(len(labels)) != want {
		return nil, fmt.Errorf("labels_file %s has %d labels, output %q has %d classes", file, len(labels), cfg.GetOutputs()[0].GetName(), want)
	}
	return labels, nil
}

// classCount is the number of classes the first output has, or 0 when
// unknown: the size of its last dimension, the class axis of a classifier;
// the score rows of OUTPUT_KIND_YOLO; unknown for OUTPUT_KIND_DETECTIONS,
// whose class column may name any class.
func classCount(cfg *predv1.ModelConfig) int64 {
	outs := cfg.GetOutputs()
	if len(outs) == 0 || len(outs[0].GetShape()) == 0 {
		return 0
	}
	shape := outs[0].GetShape()
	switch cfg.GetOutputKind() {
	case predv1.OutputKind_OUTPUT_KIND_YOLO:
		return yoloClasses(cfg)
	case predv1.OutputKind_OUTPUT_KIND_DETECTIONS:
		return 0
	}
	return max(shape[len(shape)-1], 0)
}

// readLimited reads a regular file inside root, refusing files over limit
// bytes.
func readLimited(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// selectVersions lists the version directories of a model and applies the
// version policy (nil: the latest version).
func selectVersions(root *os.Root, dir, name string, policy *predv1.VersionPolicy) ([]Version, []string, error) {
	entries, err := fs.ReadDir(root.FS(), name)
	if err != nil {
		return nil, nil, fmt.Errorf("list versions: %w", err)
	}
	var found []int64
	var warnings []string
	for _, e := range entries {
		if !e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		n, ok, warning := parseVersion(e.Name())
		if warning != "" {
			warnings = append(warnings, warning)
		}
		if ok {
			found = append(found, n)
		}
	}
	slices.Sort(found)

	var selected []int64
	switch p := policy.GetPolicy().(type) {
	case *predv1.VersionPolicy_All_:
		selected = found
	case *predv1.VersionPolicy_Specific_:
		selected = slices.Clone(p.Specific.GetVersions())
		slices.Sort(selected)
		selected = slices.Compact(selected)
	default: // latest, or no policy: latest 1
		n := 1
		if l, ok := p.(*predv1.VersionPolicy_Latest_); ok {
			n = int(l.Latest.GetNumVersions())
		}
		selected = found[max(len(found)-n, 0):]
	}
	if len(found) == 0 {
		return nil, warnings, errors.New("no version directories (named by positive integers, e.g. 1/model.onnx) in the model directory")
	}

	versions := make([]Version, 0, len(selected))
	for _, n := range selected {
		v := Version{Number: n}
		rel := path.Join(name, strconv.FormatInt(n, 10), ModelFile)
		v.Path = filepath.Join(dir, filepath.FromSlash(rel))
		if !slices.Contains(found, n) {
			v.Err = fmt.Errorf("version %d is required by the version policy but has no directory", n)
		} else if info, err := root.Stat(rel); err != nil {
			v.Err = fmt.Errorf("version %d: %w", n, err)
		} else if !info.Mode().IsRegular() {
			v.Err = fmt.Errorf("version %d: %s is not a regular file", n, ModelFile)
		}
		versions = append(versions, v)
	}
	return versions, warnings, nil
}

// parseVersion parses a version directory name: a positive integer in
// canonical form. A name that merely looks numeric ("0", "007") earns a
// warning; other names are ignored silently.
func parseVersion(name string) (n int64, ok bool, warning string) {
	if name == "" || strings.Trim(name, "0123456789") != "" {
		return 0, false, ""
	}
	n, err := strconv.ParseInt(name, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != name {
		return 0, false, fmt.Sprintf("skipped version directory %q: versions are positive integers without leading zeros", name)
	}
	return n, true, ""
}
