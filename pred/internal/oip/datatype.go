package oip

import (
	"runtime/debug"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// ServerName is the name ServerMetadata announces.
const ServerName = "prepred-pred"

// Extensions are the protocol extensions pred implements, by Triton's
// names: the REST API's binary tensor data, classification, and Triton's
// model configuration, statistics and model repository calls.
var Extensions = []string{"binary_tensor_data", "classification", "model_configuration", "statistics", "model_repository"}

// bf16Type is the name of the Open Inference Protocol's bfloat16 type,
// which pred does not serve.
const bf16Type = "BF16"

// dataTypes pairs the protocol's datatype names with pred's element types.
// BYTES is the protocol's string type: its serialization (per element a
// 4-byte little-endian length, then that many bytes) is also the Data of
// pred's STRING tensors, so BYTES data needs no conversion either way.
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
	{"BYTES", predv1.DataType_DATA_TYPE_STRING},
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
// name. BF16 is a protocol type that pred does not serve; it and unknown
// names are InvalidArgument errors.
func ParseDataType(name string) (predv1.DataType, error) {
	for _, t := range dataTypes {
		if t.name == name {
			return t.pred, nil
		}
	}
	switch name {
	case bf16Type:
		return 0, status.Error(codes.InvalidArgument, "datatype BF16 is not supported")
	case "":
		return 0, status.Error(codes.InvalidArgument, "datatype is missing")
	}
	return 0, status.Errorf(codes.InvalidArgument, "unknown datatype %q (want BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64 or BYTES)", name)
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
