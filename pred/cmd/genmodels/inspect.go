package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
)

// inspect checks that path is an ONNX model and prints one line per graph
// input and output: "input|output NAME ELEMTYPE [d0,d1,...]", a symbolic
// dimension by its name ("?" when unnamed). Inputs that are initializers
// (listed as inputs by IR version 3 exporters) are not model inputs and are
// skipped.
func inspect(w io.Writer, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%s is not an ONNX model: %w", path, err)
	}
	g := m.GetGraph()
	if len(g.GetNode()) == 0 || len(g.GetOutput()) == 0 {
		return fmt.Errorf("%s is not an ONNX model: no graph nodes or outputs", path)
	}
	initializers := map[string]bool{}
	for _, t := range g.GetInitializer() {
		initializers[t.GetName()] = true
	}
	for _, v := range g.GetInput() {
		if !initializers[v.GetName()] {
			fmt.Fprintln(w, "input", describe(v))
		}
	}
	for _, v := range g.GetOutput() {
		fmt.Fprintln(w, "output", describe(v))
	}
	return nil
}

func describe(v *onnxpb.ValueInfoProto) string {
	t := v.GetType().GetTensorType()
	elem := onnxpb.TensorProto_DataType(t.GetElemType()).String()
	var dims []string
	for _, d := range t.GetShape().GetDim() {
		switch {
		case d.GetDimParam() != "":
			dims = append(dims, d.GetDimParam())
		case d.GetValue() == nil:
			dims = append(dims, "?")
		default:
			dims = append(dims, strconv.FormatInt(d.GetDimValue(), 10))
		}
	}
	return fmt.Sprintf("%s %s [%s]", v.GetName(), elem, strings.Join(dims, ","))
}
