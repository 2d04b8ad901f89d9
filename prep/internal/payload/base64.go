package payload

import (
	"fmt"
	"slices"
	"strings"
)

// Values of base64Table besides the sextets 0..63.
const (
	b64Invalid = -1 // not part of any base64 alphabet
	b64Space   = -2 // whitespace, skipped (line breaks of wrapped output)
	b64Pad     = -3 // '='
)

// base64Table maps a byte to its sextet in either the standard ('+', '/') or
// the URL-safe ('-', '_') alphabet, or to one of the negative classes above.
var base64Table = func() (t [256]int8) {
	for i := range t {
		t[i] = b64Invalid
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = int8(i)
	}
	t['-'], t['_'] = 62, 63
	for _, c := range []byte(" \t\r\n\f\v") {
		t[c] = b64Space
	}
	t['='] = b64Pad
	return t
}()

// maxShownPrefix bounds how much of a malformed data URI prefix an error
// message repeats back.
const maxShownPrefix = 64

// Base64Error says where and why base64 text could not be decoded. Offset
// is the byte offset in the text as given (data: prefix included).
type Base64Error struct {
	Offset int
	Reason string
}

func (e *Base64Error) Error() string {
	return fmt.Sprintf("invalid base64 at offset %d: %s", e.Offset, e.Reason)
}

// DecodeBase64 decodes the base64 text people actually send: the standard or
// the URL-safe alphabet, with or without '=' padding, wrapped in lines (any
// ASCII whitespace is skipped), optionally as a data URI
// ("data:image/jpeg;base64,..."). Bits left over in a final partial group are
// ignored, as most decoders do. The error is a *Base64Error.
func DecodeBase64(s string) ([]byte, error) { return decodeBase64(nil, s) }

// text is base64 input: a string, or bytes of a request body decoded in
// place.
type text interface{ ~string | ~[]byte }

// decodeBase64 is DecodeBase64 writing into dst's storage when it is large
// enough.
func decodeBase64[T text](dst []byte, s T) ([]byte, error) {
	start, err := skipDataURIPrefix(s)
	if err != nil {
		return nil, err
	}
	out := slices.Grow(dst[:0], (len(s)-start)/4*3+3)
	out = out[:cap(out)]
	o := 0 // bytes written to out
	var (
		acc     uint32 // sextets of the current group, most significant first
		n       int    // sextets in acc
		padAt   = -1   // offset of the first '=', or -1
		sextets int    // sextets seen in total, for the empty check
	)
	for i := start; i < len(s); {
		// Fast path at a group boundary: eight, then four, alphabet
		// characters at a time.
		if n == 0 && padAt < 0 {
			for ; i+8 <= len(s); i += 8 {
				v, ok := decode8(s[i : i+8])
				if !ok {
					break
				}
				_ = out[o+5]
				out[o], out[o+1], out[o+2], out[o+3], out[o+4], out[o+5] = byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
				o += 6
				sextets += 8
			}
			if i+4 <= len(s) {
				a, b, c, d := base64Table[s[i]], base64Table[s[i+1]], base64Table[s[i+2]], base64Table[s[i+3]]
				if a|b|c|d >= 0 {
					v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
					out[o], out[o+1], out[o+2] = byte(v>>16), byte(v>>8), byte(v)
					o += 3
					sextets += 4
					i += 4
					continue
				}
			}
			if i >= len(s) {
				break
			}
		}
		ch := s[i]
		switch v := base64Table[ch]; {
		case v >= 0:
			if padAt >= 0 {
				return nil, &Base64Error{Offset: i, Reason: fmt.Sprintf("character %q after the '=' padding at offset %d", ch, padAt)}
			}
			acc = acc<<6 | uint32(v)
			n++
			sextets++
			if n == 4 {
				out[o], out[o+1], out[o+2] = byte(acc>>16), byte(acc>>8), byte(acc)
				o += 3
				acc, n = 0, 0
			}
		case v == b64Space:
		case v == b64Pad:
			if padAt < 0 {
				if n == 1 {
					return nil, &Base64Error{Offset: i, Reason: "padding after a single character of a 4-character group"}
				}
				if n == 0 && sextets == 0 {
					return nil, &Base64Error{Offset: i, Reason: "padding before any data"}
				}
				padAt = i
			}
		default:
			return nil, &Base64Error{Offset: i, Reason: fmt.Sprintf("unexpected character %s", quoteByte(ch))}
		}
		i++
	}
	switch n {
	case 1:
		return nil, &Base64Error{Offset: len(s), Reason: "data ends with a single character of a 4-character group (truncated?)"}
	case 2:
		out[o] = byte(acc >> 4)
		o++
	case 3:
		out[o], out[o+1] = byte(acc>>10), byte(acc>>2)
		o += 2
	}
	if sextets == 0 {
		return nil, &Base64Error{Offset: start, Reason: "no data"}
	}
	return out[:o], nil
}

// decode8 decodes eight alphabet characters into the low 48 bits of v; ok
// is false if any of them is not an alphabet character.
func decode8[T text](s T) (v uint64, ok bool) {
	_ = s[7]
	a, b, c, d := base64Table[s[0]], base64Table[s[1]], base64Table[s[2]], base64Table[s[3]]
	e, f, g, h := base64Table[s[4]], base64Table[s[5]], base64Table[s[6]], base64Table[s[7]]
	if a|b|c|d|e|f|g|h < 0 {
		return 0, false
	}
	return uint64(a)<<42 | uint64(b)<<36 | uint64(c)<<30 | uint64(d)<<24 | uint64(e)<<18 | uint64(f)<<12 | uint64(g)<<6 | uint64(h), true
}

// skipDataURIPrefix returns the offset where the base64 text of s begins:
// after leading whitespace and, for a data URI, after its comma.
func skipDataURIPrefix[T text](s T) (int, error) {
	i := 0
	for i < len(s) && base64Table[s[i]] == b64Space {
		i++
	}
	const scheme = "data:"
	if len(s)-i < len(scheme) || !strings.EqualFold(string(s[i:i+len(scheme)]), scheme) {
		return i, nil
	}
	comma := -1
	for j := i; j < len(s); j++ {
		if s[j] == ',' {
			comma = j - i
			break
		}
	}
	if comma < 0 {
		return 0, &Base64Error{Offset: i, Reason: "data URI without a ',' before its data"}
	}
	meta := string(s[i+len(scheme) : i+comma])
	const b64 = ";base64"
	if len(meta) < len(b64) || !strings.EqualFold(meta[len(meta)-len(b64):], b64) {
		shown := string(s[i : i+comma+1])
		if len(shown) > maxShownPrefix {
			shown = shown[:maxShownPrefix] + "..."
		}
		return 0, &Base64Error{Offset: i, Reason: fmt.Sprintf("data URI %q is not base64-encoded (expected \"data:<type>;base64,\")", shown)}
	}
	return i + comma + 1, nil
}

// quoteByte shows a byte for an error message: printable ASCII quoted,
// anything else as a hex escape.
func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}
