package oiprest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// maxDataDepth bounds the nesting of a tensor's JSON data: the protocol
// allows arrays nested as the shape is, and pred's tensors have far fewer
// dimensions.
const maxDataDepth = 64

// Non-finite floating-point values have no JSON number; as protobuf's JSON
// mapping does, they are written and read as these strings.
const (
	jsonNaN    = `"NaN"`
	jsonInf    = `"Infinity"`
	jsonNegInf = `"-Infinity"`
)

// minJSONBytesPerValue is the fewest bytes a value takes in a JSON array:
// one digit and a comma.
const minJSONBytesPerValue = 2

// decodeData parses the JSON data of a tensor of n elements of type d,
// flat or nested in arrays (the nesting is not checked against the shape,
// as Triton does not), into pred's encoding of the type: raw little-endian
// bytes, or for STRING (BYTES) the length-prefixed elements. n is bounded
// by tensor.MaxElements (tensor.MaxStringElements for STRING); the buffer
// is allocated only once the JSON is known to be long enough to hold n
// values, and for STRING it is no larger than the JSON and the lengths.
func decodeData(raw []byte, d predv1.DataType, n int64) ([]byte, error) {
	p := dataParser{s: raw, d: d, want: int(n)}
	switch size := int64(tensor.ElementSize(d)); {
	case tensor.IsString(d):
		if n > tensor.MaxStringElements {
			return nil, fmt.Errorf("a BYTES tensor holds at most %d elements, not %d", tensor.MaxStringElements, n)
		}
		if n > 0 && int64(len(raw)) < minJSONBytesPerString*n-1 {
			return nil, fmt.Errorf("data holds fewer than the %d strings the shape needs", n)
		}
		// A decoded string is never longer than its JSON (see
		// appendStringElement), so this capacity is never outgrown.
		p.out = make([]byte, 0, stringLengthBytes*n+int64(len(raw)))
	case size > 0:
		if n > 0 && int64(len(raw)) < minJSONBytesPerValue*n-1 {
			return nil, fmt.Errorf("data holds fewer than the %d values the shape needs", n)
		}
		p.size, p.out = int(size), make([]byte, n*size)
	default:
		return nil, fmt.Errorf("unsupported data type %v", d)
	}
	p.skipSpace()
	if p.i >= len(p.s) || p.s[p.i] != '[' {
		return nil, errors.New("data must be a JSON array")
	}
	if err := p.array(0); err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q after the data array", p.s[p.i])
	}
	if p.n != p.want {
		return nil, fmt.Errorf("data has %d values; the shape needs %d", p.n, n)
	}
	return p.out, nil
}

// dataParser reads JSON arrays of numbers, booleans or (for STRING)
// strings.
type dataParser struct {
	s    []byte
	i    int
	d    predv1.DataType
	size int // element size; 0 for STRING
	want int // values the shape needs
	// out holds the values: preallocated for fixed-size types, appended
	// to for STRING.
	out []byte
	n   int // values written
}

func (p *dataParser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// array reads an array starting at p.s[p.i] == '['.
func (p *dataParser) array(depth int) error {
	if depth >= maxDataDepth {
		return fmt.Errorf("data is nested deeper than %d arrays", maxDataDepth)
	}
	p.i++ // '['
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		p.skipSpace()
		if p.i >= len(p.s) {
			return errors.New("data ends inside an array")
		}
		if p.s[p.i] == '[' {
			if err := p.array(depth + 1); err != nil {
				return err
			}
		} else if err := p.value(); err != nil {
			return err
		}
		p.skipSpace()
		if p.i >= len(p.s) {
			return errors.New("data ends inside an array")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return fmt.Errorf("unexpected %q in the data array", p.s[p.i])
		}
	}
}

// value reads one scalar and stores it as the next element.
func (p *dataParser) value() error {
	if p.n >= p.want {
		return fmt.Errorf("data has more than the %d values the shape needs", p.want)
	}
	if tensor.IsString(p.d) {
		return p.stringValue()
	}
	start := p.i
	if p.s[p.i] == '"' {
		// Only the non-finite float spellings are strings.
		end := start + 1
		for end < len(p.s) && p.s[end] != '"' {
			end++
		}
		if end == len(p.s) {
			return errors.New("data ends inside a string")
		}
		p.i = end + 1
	} else {
		p.i = p.tokenEnd()
	}
	tok := p.s[start:p.i]
	if len(tok) == 0 {
		return fmt.Errorf("unexpected %q in the data array", p.s[start])
	}
	if err := p.store(tok); err != nil {
		return fmt.Errorf("value %d: %w", p.n, err)
	}
	p.n++
	return nil
}

// tokenEnd returns where the number or literal at p.i ends.
func (p *dataParser) tokenEnd() int {
	end := p.i
	for end < len(p.s) && isTokenByte(p.s[end]) {
		end++
	}
	return end
}

func isTokenByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '+' || c == '.'
}

// store parses tok as a value of p.d into element p.n. (tok stays a byte
// slice: a string made of it for strconv does not escape, so parsing
// allocates nothing.)
func (p *dataParser) store(tok []byte) error {
	le := binary.LittleEndian
	at := p.out[p.n*p.size:]
	switch p.d {
	case predv1.DataType_DATA_TYPE_BOOL:
		switch string(tok) {
		case "true":
			at[0] = 1
		case "false":
			at[0] = 0
		default:
			return fmt.Errorf("%s is not a boolean (true or false)", tok)
		}
		return nil
	case predv1.DataType_DATA_TYPE_FLOAT16, predv1.DataType_DATA_TYPE_FLOAT32, predv1.DataType_DATA_TYPE_FLOAT64:
		f, err := parseFloat(tok, p.d)
		if err != nil {
			return err
		}
		switch p.d {
		case predv1.DataType_DATA_TYPE_FLOAT16:
			le.PutUint16(at, tensor.Float16Bits(float32(f)))
		case predv1.DataType_DATA_TYPE_FLOAT32:
			le.PutUint32(at, math.Float32bits(float32(f)))
		default:
			le.PutUint64(at, math.Float64bits(f))
		}
		return nil
	}
	// Integers: signed types through ParseInt, unsigned through ParseUint,
	// each with the element's bit size, so out-of-range values fail.
	bits := p.size * 8
	switch p.d {
	case predv1.DataType_DATA_TYPE_INT8, predv1.DataType_DATA_TYPE_INT16, predv1.DataType_DATA_TYPE_INT32, predv1.DataType_DATA_TYPE_INT64:
		v, err := strconv.ParseInt(string(tok), 10, bits)
		if err != nil {
			return fmt.Errorf("%s is not an integer in the range of %s", tok, typeName(p.d))
		}
		putUint(at, p.size, uint64(v))
	default:
		v, err := strconv.ParseUint(string(tok), 10, bits)
		if err != nil {
			return fmt.Errorf("%s is not an integer in the range of %s", tok, typeName(p.d))
		}
		putUint(at, p.size, v)
	}
	return nil
}

// parseFloat parses a JSON number, or one of the strings of a non-finite
// value, rounding to the precision of d.
func parseFloat(tok []byte, d predv1.DataType) (float64, error) {
	switch string(tok) {
	case jsonNaN:
		return math.NaN(), nil
	case jsonInf:
		return math.Inf(1), nil
	case jsonNegInf:
		return math.Inf(-1), nil
	}
	if !isJSONNumber(tok) {
		return 0, fmt.Errorf("%s is not a number", tok)
	}
	bits := 64
	if d == predv1.DataType_DATA_TYPE_FLOAT32 {
		bits = 32
	}
	f, err := strconv.ParseFloat(string(tok), bits)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%s is not a number", tok)
	}
	// Out of range values round to ±Inf, as a float conversion does.
	return f, nil
}

// isJSONNumber reports whether s is a JSON number: strconv also accepts
// "Inf", "NaN", hexadecimal and underscores, which JSON does not.
func isJSONNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - start
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

func putUint(at []byte, size int, v uint64) {
	switch size {
	case 1:
		at[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(at, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(at, uint32(v))
	default:
		binary.LittleEndian.PutUint64(at, v)
	}
}

// appendData appends the elements of t as a flat JSON array.
func appendData(b []byte, t tensor.Tensor) []byte {
	le := binary.LittleEndian
	size := tensor.ElementSize(t.DType)
	b = append(b, '[')
	for i := 0; size > 0 && (i+1)*size <= len(t.Data); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		at := t.Data[i*size:]
		switch t.DType {
		case predv1.DataType_DATA_TYPE_BOOL:
			b = strconv.AppendBool(b, at[0] != 0)
		case predv1.DataType_DATA_TYPE_FLOAT16:
			b = appendFloat(b, float64(tensor.Float16Float32(le.Uint16(at))), 32)
		case predv1.DataType_DATA_TYPE_FLOAT32:
			b = appendFloat(b, float64(math.Float32frombits(le.Uint32(at))), 32)
		case predv1.DataType_DATA_TYPE_FLOAT64:
			b = appendFloat(b, math.Float64frombits(le.Uint64(at)), 64)
		case predv1.DataType_DATA_TYPE_INT8:
			b = strconv.AppendInt(b, int64(int8(at[0])), 10)
		case predv1.DataType_DATA_TYPE_INT16:
			b = strconv.AppendInt(b, int64(int16(le.Uint16(at))), 10)
		case predv1.DataType_DATA_TYPE_INT32:
			b = strconv.AppendInt(b, int64(int32(le.Uint32(at))), 10)
		case predv1.DataType_DATA_TYPE_INT64:
			b = strconv.AppendInt(b, int64(le.Uint64(at)), 10)
		case predv1.DataType_DATA_TYPE_UINT8:
			b = strconv.AppendUint(b, uint64(at[0]), 10)
		case predv1.DataType_DATA_TYPE_UINT16:
			b = strconv.AppendUint(b, uint64(le.Uint16(at)), 10)
		case predv1.DataType_DATA_TYPE_UINT32:
			b = strconv.AppendUint(b, uint64(le.Uint32(at)), 10)
		case predv1.DataType_DATA_TYPE_UINT64:
			b = strconv.AppendUint(b, le.Uint64(at), 10)
		}
	}
	return append(b, ']')
}

func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, jsonNaN...)
	case math.IsInf(f, 1):
		return append(b, jsonInf...)
	case math.IsInf(f, -1):
		return append(b, jsonNegInf...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}
