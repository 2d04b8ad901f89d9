package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prepred/prepred/prep/internal/detect"
	"github.com/prepred/prepred/prep/internal/imageprep"
	"github.com/prepred/prepred/prep/internal/metrics"
	"github.com/prepred/prepred/prep/internal/postprocess"
	"github.com/prepred/prepred/prep/internal/predclient"
	"github.com/prepred/prepred/prep/internal/tracing"
)

// classScore is one class of a top-k answer.
type classScore struct {
	Label       string  `json:"label"`
	Index       int     `json:"index"`
	Probability float64 `json:"probability"`
}

// topKBody is the answer of /predict/topk and /predict?top_k=.
type topKBody struct {
	Prediction []classScore `json:"prediction"`
	Model      string       `json:"model"`
	Version    int64        `json:"version"`
}

// predict implements POST /predict: {"prediction": [[p0, p1, ...]]}, or
// with ?top_k=N the N most probable classes as /predict/topk answers.
func (s *server) predict(c *gin.Context) {
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	p, ok := s.predictOne(c, o, nil)
	if !ok {
		return
	}
	if o.topK > 0 {
		respond(c, topKBody{Prediction: p.topK(o.topK), Model: p.ct.Model, Version: p.ct.Version})
		return
	}
	respond(c, gin.H{"prediction": [][]float64{p.probs}})
}

// predictLabel implements POST /predict/label: {"prediction": "<label>"}.
func (s *server) predictLabel(c *gin.Context) {
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	if p, ok := s.predictOne(c, o, nil); ok {
		respond(c, gin.H{"prediction": p.label(postprocess.Argmax(p.probs))})
	}
}

// predictTopK implements POST /predict/topk?k=N (or top_k=N): the N most
// probable classes, most probable first.
func (s *server) predictTopK(c *gin.Context) {
	o, ok := s.parseOptions(c, true)
	if !ok {
		return
	}
	if o.topK == 0 {
		o.topK = defaultTopK
	}
	if p, ok := s.predictOne(c, o, nil); ok {
		respond(c, topKBody{Prediction: p.topK(o.topK), Model: p.ct.Model, Version: p.ct.Version})
	}
}

// predictTest implements GET /predict/test: /predict on the bundled sample.
func (s *server) predictTest(c *gin.Context) {
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	if p, ok := s.predictOne(c, o, sampleImage); ok {
		respond(c, gin.H{"prediction": [][]float64{p.probs}})
	}
}

// predictTestLabel implements GET /predict/test/label.
func (s *server) predictTestLabel(c *gin.Context) {
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	if p, ok := s.predictOne(c, o, sampleImage); ok {
		respond(c, gin.H{"prediction": p.label(postprocess.Argmax(p.probs))})
	}
}

// batchItem is one image's result in a batch answer: its most probable
// class (and top_k when asked), or why it could not be classified.
type batchItem struct {
	*classScore
	TopK  []classScore `json:"top_k,omitempty"`
	Error *errorDetail `json:"error,omitempty"`
}

// batchBody is the answer of /predict/batch.
type batchBody struct {
	Model       string      `json:"model"`
	Version     int64       `json:"version"`
	Predictions []batchItem `json:"predictions"`
}

// predictBatch implements POST /predict/batch: several images in one
// request, sent to pred as one [N,3,H,W] tensor; one result per image, in
// order. An image that cannot be decoded gets an error in its place and
// does not fail the others.
func (s *server) predictBatch(c *gin.Context) {
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	ct, ok := s.lookupFor(c, o, false)
	if !ok {
		return
	}
	limit := min(s.maxBatch, ct.MaxBatch())
	why := fmt.Sprintf("model %q version %d takes %d images per call (max_batch_size %d), prep at most %d", ct.Model, ct.Version, ct.MaxBatch(), ct.MaxBatchSize, s.maxBatch)
	start := time.Now()
	imgs, aerr := s.readImages(c, limit, why)
	s.stage(c, metrics.StagePayload, time.Since(start))
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	c.Set(imagesKey, len(imgs))
	ctx, cancel := context.WithTimeout(c.Request.Context(), o.timeout)
	defer cancel()
	results, ct, aerr := s.infer(ctx, c, ct, o.timeout, imgs, nil)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	body := batchBody{Model: ct.Model, Version: ct.Version, Predictions: make([]batchItem, len(results))}
	for i, r := range results {
		if r.err != nil {
			body.Predictions[i].Error = &errorDetail{Code: r.err.Code, Message: fmt.Sprintf("image %d: %s", i, r.err.Message)}
			continue
		}
		p := prediction{ct: ct, probs: r.probs}
		best := p.topK(max(o.topK, 1))
		body.Predictions[i].classScore = &best[0]
		if o.topK > 0 {
			body.Predictions[i].TopK = best
		}
	}
	respond(c, body)
}

// prediction is the model's answer for one image.
type prediction struct {
	ct    *predclient.Contract
	probs []float64
}

func (p prediction) label(i int) string { return postprocess.Label(p.ct.Labels, i) }

// topK returns the k most probable classes, most probable first.
func (p prediction) topK(k int) []classScore {
	top := postprocess.TopK(p.probs, k)
	out := make([]classScore, len(top))
	for i, idx := range top {
		out[i] = classScore{Label: p.label(idx), Index: idx, Probability: p.probs[idx]}
	}
	return out
}

// lookup returns the contract of the model o selects, or answers the
// request and returns false.
func (s *server) lookup(c *gin.Context, o options) (*predclient.Contract, bool) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), o.timeout)
	defer cancel()
	ct, err := s.client.Lookup(ctx, o.model, o.version)
	if err != nil {
		writeError(c, s.lookupError(err, o))
		return nil, false
	}
	c.Set(modelKey, ct.Model)
	c.Set(versionKey, ct.Version)
	return ct, true
}

// lookupFor is lookup for a request that wants boxes (boxes true) or
// class probabilities: a model of the other kind is answered with a
// model_kind_mismatch error.
func (s *server) lookupFor(c *gin.Context, o options, boxes bool) (*predclient.Contract, bool) {
	ct, ok := s.lookup(c, o)
	if !ok {
		return nil, false
	}
	if aerr := kindError(ct, boxes); aerr != nil {
		writeError(c, aerr)
		return nil, false
	}
	return ct, true
}

// lookupError maps a failure to get the contract of the model o selects.
func (s *server) lookupError(err error, o options) *apiError {
	if o.model == s.client.Model() && o.version == s.client.Version() {
		// The default model, whose contract Run loads: not ready yet.
		return newError(http.StatusServiceUnavailable, codeNotReady, "%v", err)
	}
	var re *predclient.RefusedError
	if errors.As(err, &re) {
		return newError(http.StatusServiceUnavailable, codeNotReady, "%v", err)
	}
	switch status.Code(err) {
	case codes.NotFound:
		return newError(http.StatusNotFound, codeModelNotFound, "%v", err)
	case codes.Unavailable, codes.Canceled:
		return newError(http.StatusServiceUnavailable, codePredUnavailable, "%v", err)
	case codes.DeadlineExceeded:
		return newError(http.StatusGatewayTimeout, codeDeadlineExceeded, "no answer within the request timeout of %v: %v", o.timeout, err)
	}
	return newError(http.StatusBadGateway, codePredError, "%v", err)
}

// predictOne runs the classifier o selects on img, or on the image of the
// request body when img is nil; on failure it has answered the request.
func (s *server) predictOne(c *gin.Context, o options, img []byte) (prediction, bool) {
	var buf *[]byte
	if img == nil {
		buf = s.buffers.get(0)
		defer s.buffers.put(buf)
	}
	r, ct, ok := s.runOne(c, o, img, buf, nil)
	if !ok {
		return prediction{}, false
	}
	return prediction{ct: ct, probs: r.probs}, true
}

// runOne runs the model o selects on img, or, when img is nil, on the
// image of the request body, read into buf: class probabilities, or the
// boxes q asks for when q is not nil (a model of the other kind is a
// model_kind_mismatch error). It returns the result and the contract that
// made it; on failure it has answered the request.
func (s *server) runOne(c *gin.Context, o options, img []byte, buf *[]byte, q *boxQuery) (itemResult, *predclient.Contract, bool) {
	ct, ok := s.lookupFor(c, o, q != nil)
	if !ok {
		return itemResult{}, nil, false
	}
	if img == nil {
		start := time.Now()
		var aerr *apiError
		*buf, aerr = s.readImage(c, *buf)
		s.stage(c, metrics.StagePayload, time.Since(start))
		if aerr != nil {
			writeError(c, aerr)
			return itemResult{}, nil, false
		}
		img = *buf
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), o.timeout)
	defer cancel()
	results, ct, aerr := s.infer(ctx, c, ct, o.timeout, [][]byte{img}, q)
	if aerr == nil {
		aerr = results[0].err
	}
	if aerr != nil {
		writeError(c, aerr)
		return itemResult{}, nil, false
	}
	return results[0], ct, true
}

// imageSize is an image's width and height after EXIF orientation.
type imageSize struct{ w, h int }

// itemResult is the outcome for one image of a call to infer: its size,
// and its class probabilities or boxes.
type itemResult struct {
	size  imageSize
	probs []float64
	boxes []detect.Box
	err   *apiError
}

// infer preprocesses imgs into one pooled tensor (in parallel, within the
// preprocessing slots), sends the images that decoded to pred in one call
// and returns each image's class probabilities (q nil) or the boxes q asks
// for, or its error, with the contract that answered. The error is for
// the whole call: pred failed or its output is unusable.
//
// When pred refuses the contract because its model changed since ct was
// read (another version or spec; the refusal re-reads it), the images,
// which the request still holds, are preprocessed again with the new
// contract and sent once more, within ctx's deadline: a model swap is not
// an error for the client, unless the new model is of another kind.
func (s *server) infer(ctx context.Context, c *gin.Context, ct *predclient.Contract, timeout time.Duration, imgs [][]byte, q *boxQuery) ([]itemResult, *predclient.Contract, *apiError) {
	for retried := false; ; retried = true {
		results, aerr, err := s.inferOnce(ctx, c, ct, timeout, imgs, q)
		if err == nil {
			return results, ct, aerr
		}
		s.metrics.PredErrors.WithLabelValues(predErrorCode(err).String()).Inc()
		var ce *predclient.ContractError
		if retried || !errors.As(err, &ce) || !ce.Changed() || ctx.Err() != nil || len(imgs) > ce.Current.MaxBatch() {
			return nil, ct, predError(err, timeout)
		}
		s.metrics.ContractRetries.Inc()
		s.log.Info("model changed during the request; preprocessing again with the new contract",
			zap.String("request_id", requestIDOf(c)), zap.String("model", ct.Model),
			zap.Int64("version", ct.Version), zap.String("spec_fingerprint", ct.Fingerprint),
			zap.Int64("new_version", ce.Current.Version), zap.String("new_spec_fingerprint", ce.Current.Fingerprint))
		ct = ce.Current
		c.Set(versionKey, ct.Version)
		if aerr := kindError(ct, q != nil); aerr != nil {
			return nil, ct, aerr
		}
	}
}

// inferOnce is one attempt of infer: err is pred's failure, aerr any other.
func (s *server) inferOnce(ctx context.Context, c *gin.Context, ct *predclient.Contract, timeout time.Duration, imgs [][]byte, q *boxQuery) (_ []itemResult, aerr *apiError, err error) {
	reqID := requestIDOf(c)
	tracing.SetModel(ctx, ct.Model, ct.Version, ct.Fingerprint)
	n, size := len(imgs), ct.Preprocessor.TensorLen()
	buf := s.tensors.get(n * size)
	defer s.tensors.put(buf)
	tensor := *buf
	results := make([]itemResult, n)

	start := time.Now()
	if n == 1 {
		results[0].size, results[0].err = s.preprocess(ctx, reqID, ct.Preprocessor, imgs[0], tensor, timeout)
	} else {
		var wg sync.WaitGroup
		for i, img := range imgs {
			wg.Go(func() {
				results[i].size, results[i].err = s.preprocess(ctx, reqID, ct.Preprocessor, img, tensor[i*size:(i+1)*size], timeout)
			})
		}
		wg.Wait()
	}
	s.timing(c, metrics.StageDecodePreprocess, time.Since(start))

	// Move the tensors of the images that decoded together.
	sent := make([]int, 0, n)
	for i, r := range results {
		if r.err != nil {
			continue
		}
		if j := len(sent); j != i {
			copy(tensor[j*size:(j+1)*size], tensor[i*size:(i+1)*size])
		}
		sent = append(sent, i)
	}
	if len(sent) == 0 {
		return results, nil, nil
	}

	start = time.Now()
	s.metrics.BatchImages.Observe(float64(len(sent)))
	out, err := s.client.PredictBatch(ctx, ct, reqID, len(sent), tensor[:len(sent)*size])
	s.stage(c, metrics.StagePred, time.Since(start))
	if err != nil {
		return nil, nil, err
	}

	start = time.Now()
	defer func() { s.stage(c, metrics.StagePostprocess, time.Since(start)) }()
	if q != nil {
		return results, s.decodeBoxes(ct, out, sent, results, q), nil
	}
	scores, perr := postprocess.Scores(out, len(sent)*ct.Classes)
	if perr != nil {
		return nil, outputError(perr), nil
	}
	for j, i := range sent {
		probs, perr := postprocess.Probabilities(ct.OutputKind, scores[j*ct.Classes:(j+1)*ct.Classes:(j+1)*ct.Classes])
		if perr != nil {
			return nil, outputError(perr), nil
		}
		results[i].probs = probs
	}
	return results, nil, nil
}

// predErrorCode is the gRPC code of a failed pred call.
func predErrorCode(err error) codes.Code {
	var ce *predclient.ContractError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return status.Code(err)
}

// preprocess decodes img into dst once a preprocessing slot is free, and
// returns its size after EXIF orientation, as its header declares it.
func (s *server) preprocess(ctx context.Context, reqID string, p *imageprep.Preprocessor, img []byte, dst []float32, timeout time.Duration) (imageSize, *apiError) {
	s.metrics.ImageBytes.Observe(float64(len(img)))
	release, size, aerr := s.reserveImage(ctx, p, img, len(dst))
	if aerr != nil {
		return size, aerr
	}
	defer release()
	st := tracing.Stages{Queued: time.Now(), Bytes: len(img)}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		aerr = newError(http.StatusServiceUnavailable, codeOverloaded, "no capacity to preprocess the image within the request timeout of %v", timeout)
		st.Ended, st.Err = time.Now(), aerr
		s.tracing.Preprocess(ctx, st)
		return size, aerr
	}
	start := time.Now()
	var err error
	st.Decoded, st.Fused, err = s.processGuarded(reqID, p, img, dst)
	<-s.slots
	if s.tracing != nil {
		st.Started, st.Ended, st.Err = start, time.Now(), err
		s.tracing.Preprocess(ctx, st)
	}
	if err == nil {
		s.metrics.Stage.WithLabelValues(metrics.StageDecodePreprocess).Observe(time.Since(start).Seconds())
		if size.w > 0 {
			s.metrics.ImagePixels.Observe(float64(size.w) * float64(size.h))
		}
		return size, nil
	}
	aerr, aboutInput := imageError(err)
	if !aboutInput {
		s.log.Error("preprocessing failed", zap.String("request_id", reqID), zap.Error(err))
	}
	return size, aerr
}

// processGuarded runs p.ProcessStages; a panic, which a decoder can raise
// on hostile input, is logged with its stack and answered as an invalid
// image instead of a 500.
func (s *server) processGuarded(reqID string, p *imageprep.Preprocessor, img []byte, dst []float32) (decoded time.Time, fused bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("image decoder panicked", zap.String("request_id", reqID), zap.Any("panic", r), zap.Stack("stack"))
			err = &imageprep.Error{Code: imageprep.CodeInvalidImage, Message: fmt.Sprintf("the image could not be decoded (decoder failure: %v)", r)}
		}
	}()
	return p.ProcessStages(img, dst)
}
