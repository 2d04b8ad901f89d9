package oiprest

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/prepred/prepred/pred/internal/tensor"
)

// BYTES tensors (pred's STRING) travel as the protocol's REST binding
// carries them: as JSON data, an array of JSON strings, each string's UTF-8
// bytes being one element; as binary data, the BYTES serialization (per
// element a 4-byte little-endian length, then its bytes), which is pred's
// in-memory encoding and so needs no conversion.

// minJSONBytesPerString is the fewest bytes a string takes in a JSON
// array: two quotes and a comma.
const minJSONBytesPerString = 3

// stringLengthBytes is the size of the length before each element in a
// STRING tensor's Data (see tensor.AppendString).
const stringLengthBytes = 4

// errNotUTF8 is the error of a STRING output with an element that is not
// valid UTF-8, which a JSON string cannot carry unchanged.
var errNotUTF8 = errors.New("a BYTES element is not valid UTF-8")

// stringValue reads the JSON string at p.s[p.i] and appends it to p.out as
// the next STRING element.
func (p *dataParser) stringValue() error {
	if p.s[p.i] != '"' {
		end := p.tokenEnd()
		if end == p.i {
			return fmt.Errorf("unexpected %q in the data array", p.s[p.i])
		}
		return fmt.Errorf("value %d: %s is not a string (BYTES elements are JSON strings)", p.n, p.s[p.i:end])
	}
	end := stringEnd(p.s, p.i)
	if end < 0 {
		return errors.New("data ends inside a string")
	}
	out, err := appendStringElement(p.out, p.s[p.i:end])
	if err != nil {
		return fmt.Errorf("value %d: %w", p.n, err)
	}
	p.out, p.i = out, end
	p.n++
	return nil
}

// stringEnd returns the index just past the closing quote of the JSON
// string that starts at s[start] == '"', or -1 when s ends first. It only
// delimits the string: its escapes are checked when it is decoded.
func stringEnd(s []byte, start int) int {
	for i := start + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // skip the escaped byte, which may be a quote
		case '"':
			return i + 1
		}
	}
	return -1
}

// appendStringElement decodes the JSON string tok (quotes included) and
// appends its bytes to dst as one STRING element. It refuses invalid UTF-8,
// which JSON decoders would silently replace. The element is never longer
// than tok less its quotes: plain bytes are copied, and an escape of 2 to
// 12 bytes decodes to at most 4.
func appendStringElement(dst, tok []byte) ([]byte, error) {
	if !utf8.Valid(tok) {
		return nil, errors.New("the string is not valid UTF-8")
	}
	inner := tok[1 : len(tok)-1]
	if !needsUnquoting(inner) {
		return tensor.AppendString(dst, inner), nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return nil, fmt.Errorf("not a valid JSON string: %v", err)
	}
	return tensor.AppendString(dst, s), nil
}

// needsUnquoting reports whether the inside of a JSON string has escapes
// or control characters (which JSON forbids unescaped), so that it cannot
// be taken as it is.
func needsUnquoting(s []byte) bool {
	for _, c := range s {
		if c == '\\' || c < 0x20 {
			return true
		}
	}
	return false
}

// appendStrings appends the elements of a STRING tensor as a flat JSON
// array of strings. It fails with errNotUTF8 when an element is not valid
// UTF-8, before appending anything.
func appendStrings(b []byte, t tensor.Tensor) ([]byte, error) {
	n, err := tensor.ElementCount(t.Shape)
	if err != nil {
		return nil, err
	}
	elems, err := tensor.Strings(t.Data, n)
	if err != nil {
		return nil, err
	}
	for _, e := range elems {
		if !utf8.Valid(e) {
			return nil, errNotUTF8
		}
	}
	b = append(b, '[')
	for i, e := range elems {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, e)
	}
	return append(b, ']'), nil
}

// appendJSONString appends the valid UTF-8 s as a JSON string, escaping
// only what JSON requires: quotes, backslashes and control characters.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c >= 0x20:
			b = append(b, c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	return append(b, '"')
}
