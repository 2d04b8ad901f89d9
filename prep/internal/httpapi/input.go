package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/prepred/prepred/prep/internal/payload"
)

// maxMultipartParts bounds the parts of a multipart body, so that a body of
// many tiny parts cannot keep a handler parsing headers.
const maxMultipartParts = 256

// Field names of the multipart part that holds the image; without one of
// them the first file part is taken.
var imageFields = map[string]bool{"file": true, "image": true, "files": true, "images": true}

// multipartDataField is a multipart text field holding a base64 image, as
// "data" does in the JSON body.
const multipartDataField = "data"

// bodyKind is how a request body carries its image(s).
type bodyKind int

const (
	bodyJSON      bodyKind = iota // {"data": "<base64>"} and the batch forms
	bodyMultipart                 // multipart/form-data file upload(s)
	bodyRaw                       // the encoded image itself
)

// acceptedMedia lists the accepted Content-Types in error messages.
const acceptedMedia = `"application/json" with {"data": "<base64-encoded image>"}, "multipart/form-data" with a file part (curl -F file=@image.jpg), or the image itself as "image/*" or "application/octet-stream"`

// bodyKindOf classifies the request's Content-Type; no Content-Type is
// read as JSON, as the classic service did.
func bodyKindOf(c *gin.Context) (bodyKind, *apiError) {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		return bodyJSON, nil
	}
	media, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil:
	case media == "application/json" || strings.HasSuffix(media, "+json"):
		return bodyJSON, nil
	case media == "multipart/form-data":
		return bodyMultipart, nil
	case strings.HasPrefix(media, "image/") || media == "application/octet-stream":
		return bodyRaw, nil
	}
	return 0, newError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "Content-Type %q is not supported; send %s", ct, acceptedMedia)
}

// readImage returns the one image a prediction request carries, in dst's
// storage when large enough.
func (s *server) readImage(c *gin.Context, dst []byte) ([]byte, *apiError) {
	kind, aerr := bodyKindOf(c)
	if aerr != nil {
		return dst, aerr
	}
	switch kind {
	case bodyMultipart:
		imgs, aerr := s.readMultipart(c, dst, false, 1)
		if aerr != nil {
			return dst, aerr
		}
		return imgs[0], nil
	case bodyRaw:
		img, aerr := s.readBody(c, dst)
		if aerr == nil && len(img) == 0 {
			aerr = newError(http.StatusBadRequest, payload.CodeMissingData, "the request body is empty; send the image as the body")
		}
		return img, aerr
	}
	if aerr := s.reserveDecodedPayload(c); aerr != nil {
		return dst, aerr
	}
	body := s.buffers.get(0)
	defer s.buffers.put(body)
	if *body, aerr = s.readBody(c, *body); aerr != nil {
		return dst, aerr
	}
	img, err := payload.FromJSON(dst, *body)
	if err != nil {
		return dst, payloadError(err)
	}
	return img, nil
}

// readImages returns the images of a batch request, at most limit of them
// (limitWhy says where the limit comes from).
func (s *server) readImages(c *gin.Context, limit int, limitWhy string) ([][]byte, *apiError) {
	kind, aerr := bodyKindOf(c)
	if aerr != nil {
		return nil, aerr
	}
	switch kind {
	case bodyMultipart:
		imgs, aerr := s.readMultipart(c, nil, true, limit)
		if aerr != nil && aerr.Code == payload.CodeTooManyImages {
			aerr.Message += " (" + limitWhy + ")"
		}
		return imgs, aerr
	case bodyRaw:
		img, aerr := s.readBody(c, nil)
		if aerr == nil && len(img) == 0 {
			aerr = newError(http.StatusBadRequest, payload.CodeMissingData, "the request body is empty; send the image as the body")
		}
		return [][]byte{img}, aerr
	}
	if aerr := s.reserveDecodedPayload(c); aerr != nil {
		return nil, aerr
	}
	body := s.buffers.get(0)
	defer s.buffers.put(body)
	if *body, aerr = s.readBody(c, *body); aerr != nil {
		return nil, aerr
	}
	imgs, err := payload.BatchFromJSON(*body, limit)
	if err != nil {
		aerr := payloadError(err)
		if aerr.Code == payload.CodeTooManyImages {
			aerr.Message += " (" + limitWhy + ")"
		}
		return nil, aerr
	}
	return imgs, nil
}

// readMultipart streams a multipart/form-data body (no temporary files;
// the whole body is bounded by maxBody) and returns its images. For one
// image (batch false) it returns the part named file or image, else the
// first file part, else a base64 "data" field; for a batch every such
// part, in body order, at most limit. The first image read is stored in
// dst when it is large enough.
func (s *server) readMultipart(c *gin.Context, dst []byte, batch bool, limit int) ([][]byte, *apiError) {
	if c.Request.ContentLength > s.maxBody {
		return nil, s.tooLarge()
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.maxBody)
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return nil, newError(http.StatusBadRequest, codeBadRequest, "multipart body: %v", err)
	}
	var (
		imgs     [][]byte // a batch's images, in order
		fallback []byte   // one image: the first file part not named file or image
		field    []byte   // one image: the first "data" field, decoded
	)
	for parts := 1; ; parts++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, s.bodyError("multipart body", err)
		}
		if parts > maxMultipartParts {
			return nil, newError(http.StatusBadRequest, codeBadRequest, "the multipart body has more than %d parts", maxMultipartParts)
		}
		name := p.FormName()
		named := imageFields[name]
		isFile := named || p.FileName() != ""
		switch {
		case !isFile && name != multipartDataField:
			continue // another form field: ignored
		case !batch && !named && (fallback != nil || (!isFile && field != nil)):
			continue // a candidate of this rank is already read
		case batch && len(imgs) == limit:
			return nil, newError(http.StatusBadRequest, payload.CodeTooManyImages, "the multipart body holds more than %d images", limit)
		}
		data, aerr := s.readPart(p, dst)
		if aerr != nil {
			return nil, aerr
		}
		dst = nil // used
		if !isFile {
			if data, err = payload.DecodeBase64(string(data)); err != nil {
				return nil, newError(http.StatusBadRequest, payload.CodeInvalidBase64, "multipart field %q: %v", name, err)
			}
		}
		if len(data) == 0 {
			return nil, newError(http.StatusBadRequest, payload.CodeMissingData, "multipart part %q is empty", name)
		}
		switch {
		case batch:
			imgs = append(imgs, data)
		case named:
			return [][]byte{data}, nil
		case isFile:
			fallback = data
		default:
			field = data
		}
	}
	switch {
	case batch && len(imgs) > 0:
		return imgs, nil
	case fallback != nil:
		return [][]byte{fallback}, nil
	case field != nil:
		return [][]byte{field}, nil
	}
	return nil, newError(http.StatusBadRequest, payload.CodeMissingData, `the multipart body has no file part; send the image as a file field "file" (curl -F file=@image.jpg)`)
}

// readPart reads one multipart part into dst's storage.
func (s *server) readPart(p *multipart.Part, dst []byte) ([]byte, *apiError) {
	buf := bytes.NewBuffer(dst[:0])
	if _, err := buf.ReadFrom(p); err != nil {
		return nil, s.bodyError(fmt.Sprintf("multipart part %q", p.FormName()), err)
	}
	return buf.Bytes(), nil
}

func (s *server) tooLarge() *apiError {
	return newError(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body exceeds the limit of %d bytes", s.maxBody)
}

// bodyError maps a failure to read the body: over the limit, or broken.
func (s *server) bodyError(what string, err error) *apiError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return s.tooLarge()
	}
	return newError(http.StatusBadRequest, codeBadRequest, "reading the %s: %v", what, err)
}

// readBody reads the whole request body into dst's storage, refusing more
// than maxBody bytes.
func (s *server) readBody(c *gin.Context, dst []byte) ([]byte, *apiError) {
	cl := c.Request.ContentLength
	if cl > s.maxBody {
		return dst, s.tooLarge()
	}
	buf := bytes.NewBuffer(dst[:0])
	if cl > 0 {
		buf.Grow(int(cl) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(c.Writer, c.Request.Body, s.maxBody)); err != nil {
		return buf.Bytes(), s.bodyError("request body", err)
	}
	return buf.Bytes(), nil
}
