package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// CodeTooManyImages is the code of a batch with more images than allowed.
const CodeTooManyImages = "too_many_images"

// batchExample shows the expected batch body in error messages.
const batchExample = `{"data": ["<base64>", ...]} or {"instances": ["<base64>" or {"b64": "<base64>"}, ...]}`

// BatchFromJSON returns the decoded images of a batch request body, in
// order. Accepted forms:
//
//	{"data": ["<base64>", ...]}
//	{"instances": ["<base64>", ...]}
//	{"instances": [{"b64": "<base64>"}, {"data": "<base64>"}, ...]}
//	{"data": "<base64>"}                  (a batch of one)
//
// Each string may be anything DecodeBase64 accepts (data URIs, URL-safe,
// wrapped lines). More than limit images is an error with code
// CodeTooManyImages, detected before any image is decoded. The body may be
// modified (raw line breaks in strings become spaces).
func BatchFromJSON(body []byte, limit int) ([][]byte, error) {
	if field, items, ok := batchStrings(body); ok {
		// The common case, without a JSON decoder's passes over the body.
		return decodeItems(field, items, limit)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &Error{Code: CodeInvalidJSON, Message: "empty request body; expected " + batchExample}
	}
	blankControlWhitespace(body)
	var req struct {
		Data      json.RawMessage `json:"data"`
		Instances json.RawMessage `json:"instances"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, batchJSONError(err)
	}
	field, raw := "data", req.Data
	switch {
	case req.Data != nil && req.Instances != nil:
		return nil, &Error{Code: CodeInvalidJSON, Message: `request has both "data" and "instances"; send one of them`}
	case req.Instances != nil:
		field, raw = "instances", req.Instances
	case req.Data == nil:
		return nil, &Error{Code: CodeMissingData, Message: `request has neither "data" nor "instances"; expected ` + batchExample}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		// One image as in the classic body.
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, batchJSONError(err)
		}
		img, err := decodeItem(field, -1, s)
		if err != nil {
			return nil, err
		}
		return [][]byte{img}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, &Error{Code: CodeInvalidJSON, Message: fmt.Sprintf(`%q must be an array of base64 strings; expected %s`, field, batchExample)}
	}
	if len(items) > limit {
		return nil, &Error{Code: CodeTooManyImages, Message: fmt.Sprintf("%q holds %d images, more than the limit of %d per request", field, len(items), limit)}
	}
	texts := make([]string, len(items))
	for i, item := range items {
		var err error
		if texts[i], err = itemString(field, i, item); err != nil {
			return nil, err
		}
	}
	return decodeItems(field, texts, limit)
}

// decodeItems checks the count of a batch's base64 texts and decodes them.
func decodeItems[T text](field string, items []T, limit int) ([][]byte, error) {
	switch {
	case len(items) == 0:
		return nil, &Error{Code: CodeMissingData, Message: fmt.Sprintf("%q is empty; send at least one image", field)}
	case len(items) > limit:
		return nil, &Error{Code: CodeTooManyImages, Message: fmt.Sprintf("%q holds %d images, more than the limit of %d per request", field, len(items), limit)}
	}
	imgs := make([][]byte, len(items))
	for i, s := range items {
		var err error
		if imgs[i], err = decodeItem(field, i, s); err != nil {
			return nil, err
		}
	}
	return imgs, nil
}

// batchStrings returns the strings of a body that is exactly
// {"data": ["...", ...]} or {"instances": ["...", ...]}, with JSON
// whitespace where it is allowed and no escape sequence in the strings
// (base64 needs none); ok is false for anything else, which the JSON
// decoder then handles.
func batchStrings(body []byte) (field string, items [][]byte, ok bool) {
	i := skipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "", nil, false
	}
	i = skipJSONSpace(body, i+1)
	switch {
	case bytes.HasPrefix(body[i:], []byte(`"data"`)):
		field, i = "data", i+len(`"data"`)
	case bytes.HasPrefix(body[i:], []byte(`"instances"`)):
		field, i = "instances", i+len(`"instances"`)
	default:
		return "", nil, false
	}
	i = skipJSONSpace(body, i)
	if i >= len(body) || body[i] != ':' {
		return "", nil, false
	}
	i = skipJSONSpace(body, i+1)
	if i >= len(body) || body[i] != '[' {
		return "", nil, false
	}
	i = skipJSONSpace(body, i+1)
	if i < len(body) && body[i] == ']' {
		return "", nil, false // empty: let the decoder path say so
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return "", nil, false
		}
		n := bytes.IndexByte(body[i+1:], '"')
		if n < 0 {
			return "", nil, false
		}
		s := body[i+1 : i+1+n]
		if bytes.IndexByte(s, '\\') >= 0 {
			return "", nil, false
		}
		items = append(items, s)
		i = skipJSONSpace(body, i+2+n)
		if i >= len(body) {
			return "", nil, false
		}
		if body[i] == ']' {
			break
		}
		if body[i] != ',' {
			return "", nil, false
		}
		i = skipJSONSpace(body, i+1)
	}
	i = skipJSONSpace(body, i+1)
	if i >= len(body) || body[i] != '}' || skipJSONSpace(body, i+1) != len(body) {
		return "", nil, false
	}
	return field, items, true
}

// itemString returns the base64 text of one array item: a string, or an
// object with a "b64" or "data" string.
func itemString(field string, i int, item json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(item, &s) == nil {
		return s, nil
	}
	var obj struct {
		B64  *string `json:"b64"`
		Data *string `json:"data"`
	}
	if json.Unmarshal(item, &obj) == nil {
		switch {
		case obj.B64 != nil:
			return *obj.B64, nil
		case obj.Data != nil:
			return *obj.Data, nil
		}
	}
	return "", &Error{Code: CodeInvalidJSON, Message: fmt.Sprintf(`%s[%d] must be a base64 string or an object {"b64": "<base64>"}`, field, i)}
}

// decodeItem decodes the base64 text of item i (-1: the only one).
func decodeItem[T text](field string, i int, s T) ([]byte, error) {
	where := fmt.Sprintf("%s[%d]", field, i)
	if i < 0 {
		where = field
	}
	blank := true
	for j := 0; j < len(s) && blank; j++ {
		blank = base64Table[s[j]] == b64Space
	}
	if blank {
		return nil, &Error{Code: CodeMissingData, Message: where + " is empty; expected base64 image data"}
	}
	img, err := decodeBase64(nil, s)
	if err != nil {
		return nil, &Error{Code: CodeInvalidBase64, Message: where + ": " + err.Error()}
	}
	return img, nil
}

// batchJSONError is jsonError with the batch example.
func batchJSONError(err error) error {
	e := jsonError(err).(*Error)
	e.Message = fmt.Sprintf("%s (a batch is %s)", e.Message, batchExample)
	return e
}
