package oip

import (
	"runtime/debug"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// ServerName is the name ServerMetadata announces.
const ServerName = "prepred-pred"

// Extensions are the protocol extensions pred implements: the REST API's
// binary tensor data.
var Extensions = []string{"binary_tensor_data"}

// Datatype names of the Open Inference Protocol's tensor data types
// that need special treatment.
const (
	bytesType = "BYTES"
	bf16Type  = "BF16"
)

// dataTypes pairs the protocol's datatype names with pred's element types.
var dataTypes = []struct {
	name string
	pred predv1.DataType
}{
	{"BOOL", predv1.DataType_DATA_TYPE_BOOL},
	{"UINT8", predv1.DataType_DATA_TYPE_UINT8},
	{"UINT16", predv1.DataType_DATA_TYPE_UINT16},
	{"UINT32", predv1.DataType_DATA_TYPE_UINT32},
	{"UINT64", predv1.DataType_DATA_TYPE_UINT64},
	{"INT8", predv1.DataType_DATA_TYPE_INT8},
	{"INT16", predv1.DataType_DATA_TYPE_INT16},
	{"INT32", predv1.DataType_DATA_TYPE_INT32},
	{"INT64", predv1.DataType_DATA_TYPE_INT64},
	{"FP16", predv1.DataType_DATA_TYPE_FLOAT16},
	{"FP32", predv1.DataType_DATA_TYPE_FLOAT32},
	{"FP64", predv1.DataType_DATA_TYPE_FLOAT64},
}

// DataTypeName returns the protocol's name of d ("FP32", "INT64", ...), or
// "" for a type it has no name for.
func DataTypeName(d predv1.DataType) string {
	for _, t := range dataTypes {
		if t.pred == d {
			return t.name
		}
	}
	return ""
}

// ParseDataType returns pred's element type for the protocol's datatype
// name. BYTES (strings) and BF16 are protocol types that pred does not
// serve; they and unknown names are InvalidArgument errors.
func ParseDataType(name string) (predv1.DataType, error) {
	for _, t := range dataTypes {
		if t.name == name {
			return t.pred, nil
		}
	}
	switch name {
	case bytesType:
		return 0, status.Error(codes.InvalidArgument, "datatype BYTES: string tensors are not supported (pred serves models whose inputs are numeric or BOOL tensors)")
	case bf16Type:
		return 0, status.Error(codes.InvalidArgument, "datatype BF16 is not supported")
	case "":
		return 0, status.Error(codes.InvalidArgument, "datatype is missing")
	}
	return 0, status.Errorf(codes.InvalidArgument, "unknown datatype %q (want BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32 or FP64)", name)
}

// ServerVersion returns pred's version for ServerMetadata: the main
// module's version, else the VCS revision it was built from, else "dev".
func ServerVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return "dev"
}
