package ortrt

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// ErrFloat16Shape is the error of a run that would leave a FLOAT16
// output for ONNX Runtime to allocate.
var ErrFloat16Shape = errors.New("the shape of a FLOAT16 output must be known before the run (onnxruntime_go cannot return a FLOAT16 output that ONNX Runtime allocates); give the output fixed dimensions, apart from the batch dimension, in the model's config")

// TensorInfo describes a model input or output as ONNX Runtime sees it.
type TensorInfo struct {
	Name  string
	DType predv1.DataType
	// Shape holds -1 for every symbolic or unknown dimension.
	Shape []int64
}

// Session is an ONNX Runtime inference session on one model file. Run may
// be called from many goroutines at once; Close must not race with Run
// (the caller tracks in-flight runs).
type Session struct {
	rt      *Runtime
	path    string
	sess    *ort.DynamicAdvancedSession
	inputs  []TensorInfo
	outputs []TensorInfo

	closeOnce sync.Once
}

// Open creates a session on the ONNX model at path. Its inputs are every
// input of the model, in model order; its outputs are o.OutputNames, or
// every output.
func (r *Runtime) Open(path string, o Options) (*Session, error) {
	if err := r.addSession(); err != nil {
		return nil, err
	}
	s, err := r.open(path, o)
	if err != nil {
		r.removeSession()
		return nil, fmt.Errorf("open model %s: %w", path, err)
	}
	return s, nil
}

func (r *Runtime) open(path string, o Options) (*Session, error) {
	inputs, outputs, err := inspect(path)
	if err != nil {
		return nil, err
	}
	if len(o.OutputNames) > 0 {
		selected := make([]TensorInfo, 0, len(o.OutputNames))
		for _, name := range o.OutputNames {
			i := slices.IndexFunc(outputs, func(t TensorInfo) bool { return t.Name == name })
			if i < 0 {
				return nil, fmt.Errorf("the model has no output %q (it has %v)", name, names(outputs))
			}
			selected = append(selected, outputs[i])
		}
		outputs = selected
	}
	so, err := r.sessionOptions(o)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	sess, err := ort.NewDynamicAdvancedSession(path, names(inputs), names(outputs), so)
	if err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	return &Session{rt: r, path: path, sess: sess, inputs: inputs, outputs: outputs}, nil
}

// inspect returns the model's inputs and outputs. The library can only
// describe a session it creates itself, so this opens a throwaway one with
// graph optimizations off, which keeps it cheap.
func inspect(path string) (inputs, outputs []TensorInfo, err error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("create session options: %w", err)
	}
	defer so.Destroy()
	if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
		return nil, nil, fmt.Errorf("set graph optimization level: %w", err)
	}
	if err := so.SetIntraOpNumThreads(1); err != nil {
		return nil, nil, fmt.Errorf("set intra-op threads: %w", err)
	}
	in, out, err := ort.GetInputOutputInfoWithOptions(path, so)
	if err != nil {
		return nil, nil, fmt.Errorf("read inputs and outputs: %w", err)
	}
	if inputs, err = tensorInfos("input", in); err != nil {
		return nil, nil, err
	}
	if outputs, err = tensorInfos("output", out); err != nil {
		return nil, nil, err
	}
	return inputs, outputs, nil
}

func tensorInfos(kind string, infos []ort.InputOutputInfo) ([]TensorInfo, error) {
	out := make([]TensorInfo, 0, len(infos))
	for _, info := range infos {
		if info.OrtValueType != ort.ONNXTypeTensor {
			return nil, fmt.Errorf("%s %q is a %v; only tensors are supported", kind, info.Name, info.OrtValueType)
		}
		dt, ok := fromORT(info.DataType)
		if !ok {
			return nil, fmt.Errorf("%s %q has element type %v, which pred does not support", kind, info.Name, info.DataType)
		}
		shape := slices.Clone([]int64(info.Dimensions))
		for i, d := range shape {
			if d < 0 {
				shape[i] = -1
			}
		}
		out = append(out, TensorInfo{Name: info.Name, DType: dt, Shape: shape})
	}
	return out, nil
}

func names(ts []TensorInfo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// Path returns the model file the session runs.
func (s *Session) Path() string { return s.path }

// Inputs returns the session's inputs, in the order Run takes them.
func (s *Session) Inputs() []TensorInfo { return s.inputs }

// Outputs returns the session's outputs, in the order Run returns them.
func (s *Session) Outputs() []TensorInfo { return s.outputs }

// Run runs the model on inputs, which must be in the order of Inputs() and
// hold exactly as many bytes as their type and shape need. Input bytes are
// handed to ONNX Runtime in place (copied only if misaligned for their
// element type) and must not change until Run returns.
//
// outputShapes may give, per output, the shape the output will have; ONNX
// Runtime then writes that output straight into the returned tensor's
// buffer. A nil entry (or a nil slice) lets ONNX Runtime size the output and
// costs one copy, as every STRING output does. Outputs are returned in the
// order of Outputs().
//
// STRING inputs are copied into ONNX Runtime, which takes each element as
// a NUL-terminated C string: an element holding a NUL byte is cut there,
// so callers refuse such input beforehand.
//
// A FLOAT16 output needs its shape: onnxruntime_go cannot copy out a
// FLOAT16 output that ONNX Runtime allocated (it has no Go type for it), so
// Run refuses to run without one (ErrFloat16Shape).
//
// Cancelling ctx terminates the run early; Run then returns ctx's error.
func (s *Session) Run(ctx context.Context, inputs []tensor.Tensor, outputShapes [][]int64) ([]tensor.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(inputs) != len(s.inputs) {
		return nil, fmt.Errorf("got %d inputs, the model takes %d (%v)", len(inputs), len(s.inputs), names(s.inputs))
	}
	if outputShapes != nil && len(outputShapes) != len(s.outputs) {
		return nil, fmt.Errorf("got %d output shapes for %d outputs", len(outputShapes), len(s.outputs))
	}

	in := make([]ort.Value, len(inputs))
	out := make([]ort.Value, len(s.outputs))
	defer func() {
		destroyAll(in)
		destroyAll(out)
	}()
	for i, t := range inputs {
		v, err := newValue(t)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", s.inputs[i].Name, err)
		}
		in[i] = v
	}
	results := make([]tensor.Tensor, len(s.outputs))
	for i, info := range s.outputs {
		if info.DType == predv1.DataType_DATA_TYPE_FLOAT16 && (outputShapes == nil || outputShapes[i] == nil) {
			return nil, fmt.Errorf("output %q: %w", info.Name, ErrFloat16Shape)
		}
	}
	for i, shape := range outputShapes {
		if shape == nil || tensor.IsString(s.outputs[i].DType) {
			continue // ONNX Runtime allocates it; strings have no fixed size
		}
		info := s.outputs[i]
		size, err := tensor.ByteSize(info.DType, shape)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", info.Name, err)
		}
		if size == 0 {
			continue // ONNX Runtime allocates empty outputs itself
		}
		buf := alignedBuffer(int(size))
		v, err := ort.NewCustomDataTensor(ort.Shape(slices.Clone(shape)), buf, toORT(info.DType))
		if err != nil {
			return nil, fmt.Errorf("output %q: allocate: %w", info.Name, err)
		}
		out[i] = v
		results[i] = tensor.Tensor{Name: info.Name, DType: info.DType, Shape: slices.Clone(shape), Data: buf}
	}

	if err := s.run(ctx, in, out); err != nil {
		return nil, err
	}

	for i, v := range out {
		if results[i].Data != nil {
			continue
		}
		t, err := fromValue(s.outputs[i].Name, v)
		if err != nil {
			return nil, err
		}
		results[i] = t
	}
	return results, nil
}

// run calls ONNX Runtime, terminating the run if ctx is cancelled.
func (s *Session) run(ctx context.Context, in, out []ort.Value) error {
	if ctx.Done() == nil {
		if err := s.sess.Run(in, out); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		return nil
	}
	opts, err := ort.NewRunOptions()
	if err != nil {
		return fmt.Errorf("create run options: %w", err)
	}
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(terminated)
		opts.Terminate()
	})
	err = s.sess.RunWithOptions(in, out, opts)
	if !stop() {
		// The terminate callback has started; let it finish before the
		// options it uses are destroyed.
		<-terminated
	}
	opts.Destroy()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("run terminated: %w", ctxErr)
		}
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

// Close destroys the session. It is safe to call more than once.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.sess.Destroy()
		s.rt.removeSession()
	})
	if err != nil {
		return fmt.Errorf("close session on %s: %w", s.path, err)
	}
	return nil
}

// destroyAll destroys the values of vs. An entry may be a nil pointer in a
// non-nil interface: onnxruntime_go stores one when it fails to copy out an
// output.
func destroyAll(vs []ort.Value) {
	for _, v := range vs {
		if v != nil && !reflect.ValueOf(v).IsNil() {
			v.Destroy()
		}
	}
}

// newValue wraps t's bytes as an ONNX Runtime tensor without copying them
// (unless they are misaligned for the element type).
func newValue(t tensor.Tensor) (ort.Value, error) {
	if tensor.IsString(t.DType) {
		return newStringValue(t)
	}
	size, err := tensor.ByteSize(t.DType, t.Shape)
	if err != nil {
		return nil, err
	}
	if int64(len(t.Data)) != size {
		return nil, fmt.Errorf("has %d bytes, shape %v of %v needs %d", len(t.Data), t.Shape, t.DType, size)
	}
	if size == 0 || len(t.Shape) == 0 {
		return nil, errors.New("empty and scalar tensors are not supported")
	}
	data := t.Data
	if elem := uintptr(tensor.ElementSize(t.DType)); uintptr(unsafe.Pointer(unsafe.SliceData(data)))%elem != 0 {
		data = alignedBuffer(len(t.Data))
		copy(data, t.Data)
	}
	return ort.NewCustomDataTensor(ort.Shape(slices.Clone(t.Shape)), data, toORT(t.DType))
}

// newStringValue copies the elements of a STRING tensor into ONNX Runtime.
func newStringValue(t tensor.Tensor) (ort.Value, error) {
	n, err := tensor.ElementCount(t.Shape)
	if err != nil {
		return nil, err
	}
	if n == 0 || len(t.Shape) == 0 {
		return nil, errors.New("empty and scalar tensors are not supported")
	}
	elems, err := tensor.Strings(t.Data, n)
	if err != nil {
		return nil, err
	}
	// The library copies each element into a C string, so the Go strings
	// may alias t.Data.
	strs := make([]string, len(elems))
	for i, e := range elems {
		strs[i] = unsafe.String(unsafe.SliceData(e), len(e))
	}
	v, err := ort.NewStringTensor(ort.Shape(slices.Clone(t.Shape)))
	if err != nil {
		return nil, err
	}
	if err := v.SetContents(strs); err != nil {
		v.Destroy()
		return nil, err
	}
	return v, nil
}

// alignedBuffer returns n bytes aligned for any element type.
func alignedBuffer(n int) []byte {
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), n)
}

// fromValue takes the bytes and shape of an output ONNX Runtime allocated.
// The library has already copied them into Go memory, which stays valid
// after the value is destroyed.
func fromValue(name string, v ort.Value) (tensor.Tensor, error) {
	if v == nil {
		return tensor.Tensor{}, fmt.Errorf("output %q: the model produced no value", name)
	}
	dt, ok := fromORT(ort.TensorElementDataType(v.DataType()))
	if !ok {
		return tensor.Tensor{}, fmt.Errorf("output %q has element type %v, which pred does not support", name, ort.TensorElementDataType(v.DataType()))
	}
	var data []byte
	switch t := v.(type) {
	case *ort.Tensor[float32]:
		data = asBytes(t.GetData())
	case *ort.Tensor[float64]:
		data = asBytes(t.GetData())
	case *ort.Tensor[int8]:
		data = asBytes(t.GetData())
	case *ort.Tensor[uint8]:
		data = t.GetData()
	case *ort.Tensor[int16]:
		data = asBytes(t.GetData())
	case *ort.Tensor[uint16]:
		data = asBytes(t.GetData())
	case *ort.Tensor[int32]:
		data = asBytes(t.GetData())
	case *ort.Tensor[uint32]:
		data = asBytes(t.GetData())
	case *ort.Tensor[int64]:
		data = asBytes(t.GetData())
	case *ort.Tensor[uint64]:
		data = asBytes(t.GetData())
	case *ort.Tensor[bool]:
		data = asBytes(t.GetData())
	case *ort.CustomDataTensor:
		data = t.GetData()
	case *ort.StringTensor:
		strs, err := t.GetContents()
		if err != nil {
			return tensor.Tensor{}, fmt.Errorf("output %q: read strings: %w", name, err)
		}
		if len(strs) > tensor.MaxStringElements {
			return tensor.Tensor{}, fmt.Errorf("output %q has %d strings, more than the %d pred returns", name, len(strs), tensor.MaxStringElements)
		}
		shape := []int64(t.GetShape())
		return tensor.Tensor{Name: name, DType: dt, Shape: shape, Data: tensor.FromStrings(strs)}, nil
	default:
		return tensor.Tensor{}, fmt.Errorf("output %q is a %v, which pred does not support", name, v.GetONNXType())
	}
	shape := []int64(v.GetShape())
	if size, err := tensor.ByteSize(dt, shape); err != nil || size != int64(len(data)) {
		// onnxruntime_go copies a type it has no Go type for (float16)
		// by element count, not byte count: refuse a short copy.
		return tensor.Tensor{}, fmt.Errorf("output %q: got %d bytes for shape %v of %v", name, len(data), shape, dt)
	}
	return tensor.Tensor{Name: name, DType: dt, Shape: shape, Data: data}, nil
}

func asBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero)))
}

// toORT returns ONNX Runtime's element type for d. ONNX Runtime numbers
// its element types as ONNX's TensorProto.DataType does
// (onnxruntime_c_api.h), so tensor's mapping to ONNX serves for both.
func toORT(d predv1.DataType) ort.TensorElementDataType {
	return ort.TensorElementDataType(tensor.ONNXType(d))
}

// fromORT returns pred's element type for ONNX Runtime's d.
func fromORT(d ort.TensorElementDataType) (predv1.DataType, bool) {
	return tensor.FromONNXType(onnxpb.TensorProto_DataType(d))
}
