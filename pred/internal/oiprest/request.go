package oiprest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prepred/prepred/pred/internal/classify"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/oip"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// The JSON of an inference request, as the protocol defines it.
type (
	inferRequestJSON struct {
		ID         string                     `json:"id"`
		Parameters map[string]json.RawMessage `json:"parameters"`
		Inputs     []inputJSON                `json:"inputs"`
		Outputs    []requestedOutputJSON      `json:"outputs"`
	}
	inputJSON struct {
		Name       string                     `json:"name"`
		Shape      []int64                    `json:"shape"`
		Datatype   string                     `json:"datatype"`
		Parameters map[string]json.RawMessage `json:"parameters"`
		Data       json.RawMessage            `json:"data"`
	}
	requestedOutputJSON struct {
		Name       string                     `json:"name"`
		Parameters map[string]json.RawMessage `json:"parameters"`
	}
)

// The JSON of an inference response.
type (
	inferResponseJSON struct {
		ModelName    string       `json:"model_name"`
		ModelVersion string       `json:"model_version"`
		ID           string       `json:"id,omitempty"`
		Outputs      []outputJSON `json:"outputs"`
	}
	outputJSON struct {
		Name       string          `json:"name"`
		Datatype   string          `json:"datatype"`
		Shape      []int64         `json:"shape"`
		Parameters map[string]any  `json:"parameters,omitempty"`
		Data       json.RawMessage `json:"data,omitempty"`
	}
)

// request is a decoded inference request.
type request struct {
	id  string
	run infer.Request
	// binaryAll is the request parameter binary_data_output.
	binaryAll bool
	// binary holds the binary_data parameter of the requested outputs
	// that set it.
	binary map[string]bool
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// decodeRequest parses an inference body: JSON, or JSON followed by binary
// tensor data when headerLength (the Inference-Header-Content-Length
// header) is set. Model and version are the caller's to fill in. Binary
// input data is used in place, not copied.
func decodeRequest(body []byte, headerLength string) (*request, error) {
	header, bin := body, []byte(nil)
	if headerLength != "" {
		n, err := strconv.ParseInt(headerLength, 10, 64)
		if err != nil || n < 0 || n > int64(len(body)) {
			return nil, invalid("%s is %q; it must be the length of the JSON part of the %d-byte body", HeaderLength, headerLength, len(body))
		}
		header, bin = body[:n], body[n:]
	}
	var j inferRequestJSON
	if err := json.Unmarshal(header, &j); err != nil {
		return nil, invalid("the request is not valid inference request JSON: %v", err)
	}
	req := &request{id: j.ID, binary: map[string]bool{}}
	if err := boolParameter(j.Parameters, binaryDataOutput, &req.binaryAll); err != nil {
		return nil, invalid("%v", err)
	}
	if raw, ok := j.Parameters[oip.FingerprintParameter]; ok {
		if err := json.Unmarshal(raw, &req.run.Fingerprint); err != nil {
			return nil, invalid("parameter %q must be a string", oip.FingerprintParameter)
		}
	}

	req.run.Inputs = make([]tensor.Tensor, len(j.Inputs))
	offset := 0
	for i, in := range j.Inputs {
		where := fmt.Sprintf("input %q", in.Name)
		if in.Name == "" {
			where = fmt.Sprintf("input %d", i)
		}
		t, n, err := decodeInput(in, bin[offset:])
		if err != nil {
			return nil, invalid("%s: %v", where, err)
		}
		offset += n
		req.run.Inputs[i] = t
	}
	if offset != len(bin) {
		return nil, invalid("the body has %d bytes of binary data after the JSON, the inputs' binary_data_size parameters account for %d", len(bin), offset)
	}

	for _, o := range j.Outputs {
		if err := checkUnsupported(o.Parameters); err != nil {
			return nil, invalid("output %q: %v", o.Name, err)
		}
		var b bool
		if err := boolParameter(o.Parameters, binaryData, &b); err != nil {
			return nil, invalid("output %q: %v", o.Name, err)
		}
		if _, ok := o.Parameters[binaryData]; ok {
			req.binary[o.Name] = b
		}
		if raw, ok := o.Parameters[classify.Parameter]; ok {
			var k int64
			if err := json.Unmarshal(raw, &k); err != nil {
				return nil, invalid("output %q: parameter %q must be an integer number of classes", o.Name, classify.Parameter)
			}
			if err := oip.AddClassification(&req.run, o.Name, k); err != nil {
				return nil, err
			}
		}
		req.run.Outputs = append(req.run.Outputs, o.Name)
	}
	return req, nil
}

// decodeInput decodes one input whose binary data, if any, starts at
// bin[0], and returns how many bytes of bin it took.
func decodeInput(in inputJSON, bin []byte) (tensor.Tensor, int, error) {
	if err := checkUnsupported(in.Parameters); err != nil {
		return tensor.Tensor{}, 0, err
	}
	dtype, err := oip.ParseDataType(in.Datatype)
	if err != nil {
		return tensor.Tensor{}, 0, fmt.Errorf("%s", status.Convert(err).Message())
	}
	if in.Shape == nil {
		return tensor.Tensor{}, 0, fmt.Errorf("shape is missing")
	}
	n, err := tensor.ElementCount(in.Shape)
	if err != nil {
		return tensor.Tensor{}, 0, fmt.Errorf("shape %v: %w", in.Shape, err)
	}
	hasData := len(in.Data) > 0 && !bytes.Equal(in.Data, []byte("null"))
	t := tensor.Tensor{Name: in.Name, DType: dtype, Shape: in.Shape}
	raw, isBinary := in.Parameters[binaryDataSize]
	if !isBinary {
		if !hasData {
			return tensor.Tensor{}, 0, fmt.Errorf("no data: give data, or the parameter %s and the bytes after the JSON", binaryDataSize)
		}
		if t.Data, err = decodeData(in.Data, dtype, n); err != nil {
			return tensor.Tensor{}, 0, fmt.Errorf("data: %w", err)
		}
		return t, 0, nil
	}
	if hasData {
		return tensor.Tensor{}, 0, fmt.Errorf("has both data and the parameter %s; give one", binaryDataSize)
	}
	var size uint64
	if err := json.Unmarshal(raw, &size); err != nil {
		return tensor.Tensor{}, 0, fmt.Errorf("parameter %s must be a non-negative integer", binaryDataSize)
	}
	// A fixed-size type's size follows from the shape; BYTES elements vary
	// in length, so binary_data_size alone says where they end, and the
	// elements are checked once their bytes are known.
	if want := uint64(n) * uint64(tensor.ElementSize(dtype)); !tensor.IsString(dtype) && size != want {
		return tensor.Tensor{}, 0, fmt.Errorf("%s is %d; shape %v of %s needs %d bytes", binaryDataSize, size, in.Shape, in.Datatype, want)
	}
	if size > uint64(len(bin)) {
		return tensor.Tensor{}, 0, fmt.Errorf("%s is %d, but only %d bytes of binary data are left in the body", binaryDataSize, size, len(bin))
	}
	t.Data = bin[:size:size]
	if tensor.IsString(dtype) {
		if err := tensor.CheckData(dtype, in.Shape, t.Data); err != nil {
			return tensor.Tensor{}, 0, fmt.Errorf("binary data (%d bytes) is not the BYTES serialization of shape %v (per element a 4-byte little-endian length, then its bytes): %w",
				size, in.Shape, err)
		}
	}
	return t, int(size), nil
}

func checkUnsupported(params map[string]json.RawMessage) error {
	for _, p := range unsupportedParameters {
		if _, ok := params[p]; ok {
			return fmt.Errorf("parameter %q: the extension is not supported", p)
		}
	}
	return nil
}

// boolParameter reads the boolean parameter name, if present, into dst.
func boolParameter(params map[string]json.RawMessage, name string, dst *bool) error {
	raw, ok := params[name]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("parameter %q must be true or false", name)
	}
	return nil
}

// encodeResponse returns the JSON header of the response and, when any
// output goes as binary data, the binary parts in output order (nil
// otherwise). An output goes as binary data when asked for (binary_data,
// binary_data_output), and a BYTES output also when JSON cannot carry it
// (see jsonData); binary data are the output's Data unchanged.
func encodeResponse(req *request, resp *infer.Response) ([]byte, [][]byte, error) {
	j := inferResponseJSON{
		ModelName:    resp.Model,
		ModelVersion: infer.FormatVersion(resp.Version),
		ID:           req.id,
		Outputs:      make([]outputJSON, len(resp.Outputs)),
	}
	var bin [][]byte
	for i, o := range resp.Outputs {
		out := outputJSON{Name: o.Name, Datatype: typeName(o.DType), Shape: o.Shape}
		binary, explicit := req.binary[o.Name]
		if !explicit {
			binary = req.binaryAll
		}
		if !binary {
			data, err := jsonData(o)
			switch {
			case errors.Is(err, errNotUTF8):
				// A JSON string is Unicode text: a BYTES element that is
				// not valid UTF-8 cannot be carried by one unchanged. Such
				// an output goes as binary data instead, as if binary_data
				// had been asked for it; clients that read
				// binary_data_size (as Triton's do) find it there.
				binary = true
			case err != nil:
				return nil, nil, status.Errorf(codes.Internal, "encode output %q: %v", o.Name, err)
			default:
				out.Data = data
			}
		}
		if binary {
			out.Parameters = map[string]any{binaryDataSize: len(o.Data)}
			bin = append(bin, o.Data)
		}
		j.Outputs[i] = out
	}
	header, err := json.Marshal(j)
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "encode the response: %v", err)
	}
	return header, bin, nil
}

// jsonData returns the elements of t as a flat JSON array. It fails with
// errNotUTF8 for a STRING tensor with an element that is not valid UTF-8.
func jsonData(t tensor.Tensor) ([]byte, error) {
	if tensor.IsString(t.DType) {
		// Each element's 4-byte length becomes two quotes and a comma.
		return appendStrings(make([]byte, 0, len(t.Data)+2), t)
	}
	return appendData(make([]byte, 0, 8*len(t.Data)/max(1, tensor.ElementSize(t.DType))+2), t), nil
}
