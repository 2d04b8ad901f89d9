package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prepred/prepred/pred/internal/testmodels"
	"github.com/prepred/prepred/pred/modelgen"
)

// run parses args, generates the models and prints what it wrote; with
// -inspect it describes an ONNX file instead.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("genmodels", flag.ContinueOnError)
	fs.SetOutput(stdout)
	out := fs.String("out", envOr(getenv, "PRED_MODEL_REPOSITORY", "models"),
		"model repository directory to write to (env PRED_MODEL_REPOSITORY)")
	force := fs.Bool("force", false, "regenerate models that are already complete")
	inspectPath := fs.String("inspect", "", "print the inputs and outputs of this ONNX file and exit")
	colorsOrder := fs.String("colors-color-order", "", "write the colors model for input in this color order ("+colorOrderNames()+
		"): its PreprocessSpec and weights change together, a release whose spec differs (implies -force)")
	var models, testModels modelList
	fs.Var(&models, "model", "model to generate, repeatable (default: all of "+strings.Join(modelgen.Names(), ", ")+")")
	fs.Var(&testModels, "test-model", "write this element-type test model instead, repeatable: "+strings.Join(testmodels.Names(), ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if *inspectPath != "" {
		return inspect(stdout, *inspectPath)
	}
	if len(testModels) > 0 {
		if len(models) > 0 {
			return fmt.Errorf("-model and -test-model do not go together")
		}
		if err := testmodels.Write(*out, testModels...); err != nil {
			return err
		}
		for _, name := range testModels {
			fmt.Fprintf(stdout, "wrote     %s\n", filepath.Join(*out, name))
		}
		return nil
	}

	if *colorsOrder != "" {
		if _, ok := colorOrders[*colorsOrder]; !ok {
			return fmt.Errorf("-colors-color-order %q: want one of %s", *colorsOrder, colorOrderNames())
		}
		if len(models) > 0 && !slices.Contains(models, modelgen.Colors) {
			return fmt.Errorf("-colors-color-order changes the %s model, which -model does not name", modelgen.Colors)
		}
		// The variant starts from the standard model, written afresh.
		*force = true
	}

	start := time.Now()
	results, err := modelgen.Build(*out, *force, models...)
	if err == nil && *colorsOrder != "" {
		err = writeColorsOrder(*out, *colorsOrder)
	}
	for _, r := range results {
		if !r.Generated {
			fmt.Fprintf(stdout, "kept      %s (complete)\n", r.Dir)
			continue
		}
		fmt.Fprintf(stdout, "generated %s\n", r.Dir)
		if err := listFiles(stdout, r.Dir); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// listFiles prints the regular files under dir with their sizes.
func listFiles(w io.Writer, dir string) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "          %-18s %12d bytes\n", rel, info.Size())
		return nil
	})
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// modelList collects repeated -model flags.
type modelList []string

func (m *modelList) String() string { return strings.Join(*m, ",") }

func (m *modelList) Set(v string) error {
	*m = append(*m, v)
	return nil
}
