package predclient

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// Predict runs the model on one preprocessed image: input holds
// ct.Preprocessor.TensorLen() values and is sent as raw bytes without
// conversion (it must not be modified until Predict returns). It returns
// the model's first output for the image. requestID, if not empty, travels
// as gRPC metadata. A contract pred no longer accepts yields a
// *ContractError after the contract has been re-read once.
func (c *Client) Predict(ctx context.Context, ct *Contract, requestID string, input []float32) (*predv1.Tensor, error) {
	return c.PredictBatch(ctx, ct, requestID, 1, input)
}

// PredictBatch runs the model on n preprocessed images in one call: input
// holds n*ct.Preprocessor.TensorLen() values, image after image, sent as
// one tensor [n, 3, H, W]. n must be 1 or at most ct.MaxBatchSize. The
// output holds the model's first output for the n images, in order.
func (c *Client) PredictBatch(ctx context.Context, ct *Contract, requestID string, n int, input []float32) (*predv1.Tensor, error) {
	if n < 1 || (n > 1 && n > ct.MaxBatch()) {
		return nil, fmt.Errorf("predclient: batch of %d images, model %q version %d takes 1 to %d", n, ct.Model, ct.Version, ct.MaxBatch())
	}
	if want := n * ct.Preprocessor.TensorLen(); len(input) != want {
		return nil, fmt.Errorf("predclient: input has %d values, %d images need %d", len(input), n, want)
	}
	shape := ct.requestShape
	if n > 1 {
		shape = slices.Clone(shape)
		shape[0] = int64(n)
	}
	if requestID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, RequestIDKey, requestID)
	}
	req := &predv1.PredictRequest{
		Model:           ct.Model,
		Version:         ct.Version,
		SpecFingerprint: ct.Fingerprint,
		Inputs: []*predv1.Tensor{{
			Name:    ct.Input.GetName(),
			Dtype:   predv1.DataType_DATA_TYPE_FLOAT32,
			Shape:   shape,
			RawData: float32Bytes(input),
		}},
	}
	pctx, note := withPickNote(ctx, contractID{ct.Model, ct.Version, ct.Fingerprint})
	resp, err := c.rpc.Predict(pctx, req)
	// A replica that refuses the contract is skipped for it from now on:
	// while another ready replica has not refused it (a rolling update
	// half done), the call goes there, and only when none is left is the
	// contract re-read.
	for try := 1; err != nil && refusesContract(err) && note.others.Load() && try < maxContractTries && ctx.Err() == nil; try++ {
		resp, err = c.rpc.Predict(pctx, req)
	}
	if err != nil {
		return nil, c.predictError(ctx, ct, err)
	}
	for _, out := range resp.GetOutputs() {
		if out.GetName() == ct.Output.GetName() {
			return out, nil
		}
	}
	return nil, status.Errorf(codes.Internal, "pred's answer for model %q version %d lacks output %q", ct.Model, ct.Version, ct.Output.GetName())
}

// maxContractTries bounds the replicas one Predict tries when they refuse
// its contract.
const maxContractTries = 8

// predictError explains a failed Predict call.
func (c *Client) predictError(ctx context.Context, ct *Contract, err error) error {
	switch {
	case refusesContract(err):
		// pred no longer serves this contract (fingerprint mismatch, or the
		// version is gone): re-read it once, so the next request uses the
		// new one, and say what changed.
		cerr := &ContractError{Model: ct.Model, Version: ct.Version, Fingerprint: ct.Fingerprint, Code: status.Code(err), Reason: status.Convert(err).Message()}
		cerr.Current, cerr.RefreshErr = c.refreshAfter(ctx, ct)
		if cerr.RefreshErr != nil && ct.key == c.def.key {
			c.wakeRun()
		}
		return cerr
	case status.Code(err) == codes.DeadlineExceeded:
		if s := c.conn.GetState(); s != connectivity.Ready {
			return status.Errorf(codes.Unavailable, "pred at %s is not reachable (connection %s when the request deadline passed)", c.cfg.Target, s)
		}
	}
	return fmt.Errorf("pred Predict (model %q version %d): %w", ct.Model, ct.Version, err)
}

// refreshAfter re-reads the contract of stale's model unless it has already
// been replaced since stale was current (many requests fail together when
// it changes).
func (c *Client) refreshAfter(ctx context.Context, stale *Contract) (*Contract, error) {
	e := c.entryOf(stale.key)
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	if cur := e.contract.Load(); cur != stale && cur != nil {
		return cur, nil
	}
	ct, err := c.refreshLocked(ctx, e)
	if status.Code(err) == codes.NotFound && e != c.def {
		c.forget(e)
	}
	return ct, err
}

// ContractError is a Predict that pred refused because the contract prep
// used no longer holds (FAILED_PRECONDITION or NOT_FOUND).
type ContractError struct {
	Model       string
	Version     int64
	Fingerprint string
	// Code is pred's answer: FailedPrecondition or NotFound.
	Code codes.Code
	// Reason is pred's message.
	Reason string
	// Current is the contract read after the refusal, nil if the read
	// failed with RefreshErr.
	Current    *Contract
	RefreshErr error
}

// Changed reports whether the re-read found a different contract, so that
// the same request, sent again, is expected to succeed.
func (e *ContractError) Changed() bool {
	return e.Current != nil && (e.Current.Fingerprint != e.Fingerprint || e.Current.Version != e.Version)
}

func (e *ContractError) Error() string {
	msg := fmt.Sprintf("pred refused the contract prep used for model %q version %d (spec fingerprint %s): %s", e.Model, e.Version, e.Fingerprint, e.Reason)
	switch {
	case e.RefreshErr != nil:
		return msg + "; re-reading the contract failed: " + e.RefreshErr.Error()
	case e.Changed():
		return fmt.Sprintf("%s; the contract has been re-read (now version %d, spec fingerprint %s): retry the request", msg, e.Current.Version, e.Current.Fingerprint)
	default:
		return msg + "; re-reading the contract gave the same one, so prep and pred disagree about it"
	}
}

// nativeLittleEndian reports whether float32 values are stored in memory
// in the byte order of the wire format.
var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// float32Bytes returns v as little-endian bytes: a view of v's memory on
// little-endian hosts (no copy, no conversion), a converted copy elsewhere.
func float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	if nativeLittleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	}
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}
