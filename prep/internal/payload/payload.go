// Package payload extracts the encoded images that JSON prediction bodies
// carry: the classic {"data": "<base64>"} and the batch forms
// {"data": [...]} and {"instances": [...]}.
package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Codes of the errors this package returns; they appear in HTTP error bodies.
const (
	CodeInvalidJSON   = "invalid_json"
	CodeMissingData   = "missing_data"
	CodeInvalidBase64 = "invalid_base64"
)

// Error is a request the package could not extract an image from. Code is
// one of the Code constants; Message says what is wrong and where.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// jsonExample shows the expected body in error messages.
const jsonExample = `{"data": "<base64-encoded image>"}`

// FromJSON returns the decoded image of a classic request body
// {"data": "<base64>"} (other fields are ignored), in dst's storage when it
// is large enough (dst may be nil). It may modify body: raw
// line breaks and tabs, which JSON forbids inside strings but which a
// base64 tool's wrapped output leaves there when the body is sent verbatim
// (curl --data-binary), are accepted.
func FromJSON(dst, body []byte) ([]byte, error) {
	if data, ok := classicData(body); ok {
		// The common case, decoded in place without a JSON decoder.
		return decodeData(dst, data)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &Error{Code: CodeInvalidJSON, Message: "empty request body; expected " + jsonExample}
	}
	// Outside strings CR, LF and TAB are whitespace like a space; inside
	// them JSON forbids them raw, and DecodeBase64 skips the spaces.
	blankControlWhitespace(body)
	var req struct {
		Data *string `json:"data"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, jsonError(err)
	}
	if req.Data == nil {
		return nil, &Error{Code: CodeMissingData, Message: `request has no "data" field; expected ` + jsonExample}
	}
	return decodeData(dst, *req.Data)
}

// decodeData decodes the value of the "data" field.
func decodeData[T text](dst []byte, data T) ([]byte, error) {
	blank := true
	for i := 0; i < len(data) && blank; i++ {
		blank = base64Table[data[i]] == b64Space
	}
	if blank {
		return nil, &Error{Code: CodeMissingData, Message: `"data" is empty; expected ` + jsonExample}
	}
	img, err := decodeBase64(dst, data)
	if err != nil {
		return nil, &Error{Code: CodeInvalidBase64, Message: `"data": ` + err.Error()}
	}
	return img, nil
}

// classicData returns the contents of the data string when body is exactly
// {"data": "..."}, with JSON whitespace anywhere it is allowed and no escape
// sequence in the string (base64 needs none); ok is false for anything
// else, which the JSON decoder then handles.
func classicData(body []byte) (data []byte, ok bool) {
	i := skipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false
	}
	i = skipJSONSpace(body, i+1)
	const key = `"data"`
	if !bytes.HasPrefix(body[i:], []byte(key)) {
		return nil, false
	}
	i = skipJSONSpace(body, i+len(key))
	if i >= len(body) || body[i] != ':' {
		return nil, false
	}
	i = skipJSONSpace(body, i+1)
	if i >= len(body) || body[i] != '"' {
		return nil, false
	}
	start := i + 1
	n := bytes.IndexByte(body[start:], '"')
	if n < 0 {
		return nil, false
	}
	data = body[start : start+n]
	if bytes.IndexByte(data, '\\') >= 0 {
		return nil, false
	}
	i = skipJSONSpace(body, start+n+1)
	if i >= len(body) || body[i] != '}' || skipJSONSpace(body, i+1) != len(body) {
		return nil, false
	}
	return data, true
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON whitespace.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// blankControlWhitespace replaces raw CR, LF and TAB bytes with spaces.
func blankControlWhitespace(b []byte) {
	for i := bytes.IndexAny(b, "\r\n\t"); i >= 0; {
		b[i] = ' '
		j := bytes.IndexAny(b[i+1:], "\r\n\t")
		if j < 0 {
			return
		}
		i += 1 + j
	}
}

// jsonError turns an encoding/json error into an *Error naming the problem.
func jsonError(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return &Error{Code: CodeInvalidJSON, Message: fmt.Sprintf("request body is not valid JSON (at offset %d: %v); expected %s", syn.Offset, syn, jsonExample)}
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if typ.Field == "data" {
			return &Error{Code: CodeInvalidJSON, Message: fmt.Sprintf(`"data" must be a base64 string, not a JSON %s`, typ.Value)}
		}
		return &Error{Code: CodeInvalidJSON, Message: fmt.Sprintf("request body must be a JSON object %s, not a JSON %s", jsonExample, typ.Value)}
	}
	return &Error{Code: CodeInvalidJSON, Message: fmt.Sprintf("request body is not valid JSON: %v; expected %s", err, jsonExample)}
}
