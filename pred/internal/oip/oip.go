// Package oip implements the Open Inference Protocol (KServe "v2", the
// protocol of Triton and MLServer) over gRPC, inference.GRPCInferenceService,
// so that their clients work against pred unchanged. It also holds what the
// protocol's REST binding (package oiprest) shares with it: datatype names,
// server identity and the decoding of typed tensor contents.
//
// Shapes are full tensor shapes, batch dimension included (-1 in model
// metadata when the model batches), as in pred's native API. ModelInfer
// accepts inputs either all in raw_input_contents or all in typed
// contents, and answers with raw_output_contents, as Triton does.
//
// String tensors are the protocol's BYTES datatype, pred's DATA_TYPE_STRING.
// Their raw contents, in requests and responses alike, are the protocol's
// BYTES serialization: per element a 4-byte little-endian length, then that
// many bytes. Typed BYTES inputs come in contents.bytes_contents, one entry
// per element.
//
// Of Triton's extensions it serves classification (an output requested
// with the int64 parameter classification = K comes back as its top K,
// BYTES "value:index:label"), ModelConfig, ModelStatistics and, through
// Options.Repository, the repository RPCs.
package oip

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/classify"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// Request parameters pred reads. Others are accepted and ignored, as the
// protocol lets servers do.
const (
	// FingerprintParameter is a request parameter (string) holding the
	// spec fingerprint of the preprocessing that made the inputs; when set,
	// a mismatch with the model's fails the request with
	// FAILED_PRECONDITION, as in pred's native API.
	FingerprintParameter = "spec_fingerprint"
	// sharedMemoryParameter selects the shared-memory extension, which
	// pred does not implement.
	sharedMemoryParameter = "shared_memory_region"
)

// Options configure a Service.
type Options struct {
	// Ready reports whether pred serves inference requests.
	Ready func() bool
	// Version is the server version ServerMetadata announces.
	Version string
	// Repository serves the repository RPCs (package management's GRPC);
	// nil answers them UNAVAILABLE.
	Repository Repository
}

// Repository serves Triton's repository RPCs.
type Repository interface {
	RepositoryIndex(context.Context, *inferencepb.RepositoryIndexRequest) (*inferencepb.RepositoryIndexResponse, error)
	RepositoryModelLoad(context.Context, *inferencepb.RepositoryModelLoadRequest) (*inferencepb.RepositoryModelLoadResponse, error)
	RepositoryModelUnload(context.Context, *inferencepb.RepositoryModelUnloadRequest) (*inferencepb.RepositoryModelUnloadResponse, error)
}

// Service implements inferencepb.GRPCInferenceServiceServer.
type Service struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer
	run  *infer.Runner
	opts Options
}

// New returns the service running requests on run.
func New(run *infer.Runner, o Options) *Service {
	if o.Ready == nil {
		o.Ready = func() bool { return true }
	}
	return &Service{run: run, opts: o}
}

// ServerLive implements GRPCInferenceService.ServerLive.
func (s *Service) ServerLive(context.Context, *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

// ServerReady implements GRPCInferenceService.ServerReady.
func (s *Service) ServerReady(context.Context, *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	return &inferencepb.ServerReadyResponse{Ready: s.opts.Ready()}, nil
}

// ModelReady implements GRPCInferenceService.ModelReady: an unknown model
// or version is NOT_FOUND, one that is loading or failed is not ready.
func (s *Service) ModelReady(_ context.Context, req *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	version, err := infer.ParseVersion(req.GetVersion())
	if err != nil {
		return nil, err
	}
	ready, err := s.run.Ready(req.GetName(), version)
	if err != nil {
		return nil, err
	}
	return &inferencepb.ModelReadyResponse{Ready: ready}, nil
}

// ServerMetadata implements GRPCInferenceService.ServerMetadata.
func (s *Service) ServerMetadata(context.Context, *inferencepb.ServerMetadataRequest) (*inferencepb.ServerMetadataResponse, error) {
	return &inferencepb.ServerMetadataResponse{Name: ServerName, Version: s.opts.Version, Extensions: Extensions}, nil
}

// ModelMetadata implements GRPCInferenceService.ModelMetadata.
func (s *Service) ModelMetadata(_ context.Context, req *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	version, err := infer.ParseVersion(req.GetVersion())
	if err != nil {
		return nil, err
	}
	md, err := s.run.Metadata(req.GetName(), version)
	if err != nil {
		return nil, err
	}
	resp := &inferencepb.ModelMetadataResponse{Name: md.Model, Platform: md.Platform}
	for _, v := range md.Versions {
		resp.Versions = append(resp.Versions, infer.FormatVersion(v))
	}
	resp.Inputs = tensorMetadata(md.Inputs)
	resp.Outputs = tensorMetadata(md.Outputs)
	return resp, nil
}

func tensorMetadata(specs []*predv1.TensorSpec) []*inferencepb.ModelMetadataResponse_TensorMetadata {
	out := make([]*inferencepb.ModelMetadataResponse_TensorMetadata, len(specs))
	for i, t := range specs {
		out[i] = &inferencepb.ModelMetadataResponse_TensorMetadata{Name: t.GetName(), Datatype: DataTypeName(t.GetDtype()), Shape: t.GetShape()}
	}
	return out
}

// ModelInfer implements GRPCInferenceService.ModelInfer.
func (s *Service) ModelInfer(ctx context.Context, req *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	ireq, err := DecodeRequest(req)
	if err != nil {
		return nil, err
	}
	resp, err := s.run.Run(ctx, ireq)
	if err != nil {
		return nil, err
	}
	out := &inferencepb.ModelInferResponse{
		ModelName:         resp.Model,
		ModelVersion:      infer.FormatVersion(resp.Version),
		Id:                req.GetId(),
		Outputs:           make([]*inferencepb.ModelInferResponse_InferOutputTensor, len(resp.Outputs)),
		RawOutputContents: make([][]byte, len(resp.Outputs)),
	}
	for i, o := range resp.Outputs {
		out.Outputs[i] = &inferencepb.ModelInferResponse_InferOutputTensor{Name: o.Name, Datatype: DataTypeName(o.DType), Shape: o.Shape}
		out.RawOutputContents[i] = o.Data
	}
	return out, nil
}

// DecodeRequest turns a ModelInferRequest into an inference request,
// checking everything the protocol itself defines: the version string,
// datatypes, and that the data of each input matches its shape (for BYTES,
// that it is well-formed BYTES serialization of as many elements as the
// shape has). Raw input bytes are used in place, not copied.
func DecodeRequest(req *inferencepb.ModelInferRequest) (infer.Request, error) {
	version, err := infer.ParseVersion(req.GetModelVersion())
	if err != nil {
		return infer.Request{}, err
	}
	ireq := infer.Request{Model: req.GetModelName(), Version: version}
	if p, ok := req.GetParameters()[FingerprintParameter]; ok {
		fp, ok := p.GetParameterChoice().(*inferencepb.InferParameter_StringParam)
		if !ok {
			return infer.Request{}, status.Errorf(codes.InvalidArgument, "parameter %q must be a string", FingerprintParameter)
		}
		ireq.Fingerprint = fp.StringParam
	}
	raw := req.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(req.GetInputs()) {
		return infer.Request{}, status.Errorf(codes.InvalidArgument,
			"raw_input_contents has %d entries for %d inputs; send one per input, in the order of inputs, or none and typed contents", len(raw), len(req.GetInputs()))
	}
	ireq.Inputs = make([]tensor.Tensor, len(req.GetInputs()))
	for i, in := range req.GetInputs() {
		where := fmt.Sprintf("input %q", in.GetName())
		if in.GetName() == "" {
			where = fmt.Sprintf("input %d", i)
		}
		if _, ok := in.GetParameters()[sharedMemoryParameter]; ok {
			return infer.Request{}, status.Errorf(codes.InvalidArgument, "%s: the shared-memory extension is not supported; send the data in the request", where)
		}
		dtype, err := ParseDataType(in.GetDatatype())
		if err != nil {
			return infer.Request{}, status.Errorf(codes.InvalidArgument, "%s: %s", where, status.Convert(err).Message())
		}
		n, err := tensor.ElementCount(in.GetShape())
		if err != nil {
			return infer.Request{}, status.Errorf(codes.InvalidArgument, "%s: shape %v: %v", where, in.GetShape(), err)
		}
		var data []byte
		if len(raw) > 0 {
			if in.GetContents() != nil {
				return infer.Request{}, status.Errorf(codes.InvalidArgument, "%s has contents, but the request uses raw_input_contents; use one or the other for all inputs", where)
			}
			data = raw[i]
			if err := checkRaw(in, dtype, n, data); err != nil {
				return infer.Request{}, status.Errorf(codes.InvalidArgument, "%s: raw_input_contents[%d] %v", where, i, err)
			}
		} else {
			if data, err = DecodeContents(in.GetDatatype(), dtype, in.GetContents(), n); err != nil {
				return infer.Request{}, status.Errorf(codes.InvalidArgument, "%s: %v", where, err)
			}
		}
		ireq.Inputs[i] = tensor.Tensor{Name: in.GetName(), DType: dtype, Shape: in.GetShape(), Data: data}
	}
	for _, o := range req.GetOutputs() {
		if _, ok := o.GetParameters()[sharedMemoryParameter]; ok {
			return infer.Request{}, status.Errorf(codes.InvalidArgument, "output %q: parameter %q: the extension is not supported", o.GetName(), sharedMemoryParameter)
		}
		if p, ok := o.GetParameters()[classify.Parameter]; ok {
			k, ok := p.GetParameterChoice().(*inferencepb.InferParameter_Int64Param)
			if !ok {
				return infer.Request{}, status.Errorf(codes.InvalidArgument, "output %q: invalid value type for parameter %q, expected int64_param", o.GetName(), classify.Parameter)
			}
			if err := AddClassification(&ireq, o.GetName(), k.Int64Param); err != nil {
				return infer.Request{}, err
			}
		}
		ireq.Outputs = append(ireq.Outputs, o.GetName())
	}
	return ireq, nil
}

// AddClassification records an output's classification parameter in req:
// K classes; 0 asks for none, as in Triton; a negative K is
// InvalidArgument.
func AddClassification(req *infer.Request, output string, k int64) error {
	switch {
	case k < 0:
		return status.Errorf(codes.InvalidArgument, "output %q: parameter %q must be a number of classes, not %d", output, classify.Parameter, k)
	case k == 0:
		return nil
	}
	if req.Classification == nil {
		req.Classification = map[string]int64{}
	}
	req.Classification[output] = k
	return nil
}

// checkRaw checks that data, the raw contents of input in, holds exactly
// the n elements of its shape: for a fixed-size dtype, by its length; for
// BYTES, by decoding every element's length prefix. The error completes a
// sentence that starts with the input and its raw_input_contents index.
func checkRaw(in *inferencepb.ModelInferRequest_InferInputTensor, dtype predv1.DataType, n int64, data []byte) error {
	if tensor.IsString(dtype) {
		if _, err := tensor.Strings(data, n); err != nil {
			return fmt.Errorf("(%d bytes) is not the BYTES serialization of shape %v (per element a 4-byte little-endian length, then its bytes): %v",
				len(data), in.GetShape(), err)
		}
		return nil
	}
	if size := n * int64(tensor.ElementSize(dtype)); int64(len(data)) != size {
		return fmt.Errorf("has %d bytes; shape %v of %s needs %d", len(data), in.GetShape(), in.GetDatatype(), size)
	}
	return nil
}

// DecodeContents encodes the typed contents of a tensor of n elements of
// dtype (named name in the protocol) as raw bytes. The protocol's field for
// the type must hold exactly n values and every other field none; values
// must fit the type (an INT8 element in int_contents is -128..127). BYTES
// elements, one per entry of bytes_contents, are encoded in the BYTES
// serialization; n must not exceed tensor.MaxStringElements.
func DecodeContents(name string, dtype predv1.DataType, c *inferencepb.InferTensorContents, n int64) ([]byte, error) {
	fields := []struct {
		name string
		len  int
	}{
		{"bool_contents", len(c.GetBoolContents())},
		{"int_contents", len(c.GetIntContents())},
		{"int64_contents", len(c.GetInt64Contents())},
		{"uint_contents", len(c.GetUintContents())},
		{"uint64_contents", len(c.GetUint64Contents())},
		{"fp32_contents", len(c.GetFp32Contents())},
		{"fp64_contents", len(c.GetFp64Contents())},
		{"bytes_contents", len(c.GetBytesContents())},
	}
	var want string
	switch dtype {
	case predv1.DataType_DATA_TYPE_BOOL:
		want = "bool_contents"
	case predv1.DataType_DATA_TYPE_INT8, predv1.DataType_DATA_TYPE_INT16, predv1.DataType_DATA_TYPE_INT32:
		want = "int_contents"
	case predv1.DataType_DATA_TYPE_INT64:
		want = "int64_contents"
	case predv1.DataType_DATA_TYPE_UINT8, predv1.DataType_DATA_TYPE_UINT16, predv1.DataType_DATA_TYPE_UINT32:
		want = "uint_contents"
	case predv1.DataType_DATA_TYPE_UINT64:
		want = "uint64_contents"
	case predv1.DataType_DATA_TYPE_FLOAT32:
		want = "fp32_contents"
	case predv1.DataType_DATA_TYPE_FLOAT64:
		want = "fp64_contents"
	case predv1.DataType_DATA_TYPE_STRING:
		// Checked before any element is encoded: protobuf has already
		// decoded the entries, but encoding them would double the memory.
		if n > tensor.MaxStringElements {
			return nil, fmt.Errorf("shape has %d elements; a %s tensor holds at most %d", n, name, tensor.MaxStringElements)
		}
		want = "bytes_contents"
	case predv1.DataType_DATA_TYPE_FLOAT16:
		return nil, fmt.Errorf("datatype FP16 has no typed contents field; send its bytes in raw_input_contents")
	default:
		return nil, fmt.Errorf("datatype %s has no typed contents field", name)
	}
	if c == nil {
		return nil, fmt.Errorf("no data: set contents.%s or send raw_input_contents", want)
	}
	for _, f := range fields {
		if f.name != want && f.len > 0 {
			return nil, fmt.Errorf("datatype %s takes its values in contents.%s, but the request sets contents.%s", name, want, f.name)
		}
	}
	for _, f := range fields {
		if f.name == want && int64(f.len) != n {
			return nil, fmt.Errorf("contents.%s has %d values; the shape needs %d", want, f.len, n)
		}
	}
	switch want {
	case "bool_contents":
		return tensor.FromBools(c.GetBoolContents()), nil
	case "int_contents":
		return tensor.FromInts(dtype, c.GetIntContents())
	case "int64_contents":
		return tensor.FromInts(dtype, c.GetInt64Contents())
	case "uint_contents":
		return tensor.FromInts(dtype, c.GetUintContents())
	case "uint64_contents":
		return tensor.FromInts(dtype, c.GetUint64Contents())
	case "fp32_contents":
		return tensor.FromFloats(dtype, c.GetFp32Contents())
	case "bytes_contents":
		return tensor.FromStrings(c.GetBytesContents()), nil
	default:
		return tensor.FromFloats(dtype, c.GetFp64Contents())
	}
}

// check that the service keeps implementing the generated interface.
var _ inferencepb.GRPCInferenceServiceServer = (*Service)(nil)
