package payload

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// wrap inserts sep every n characters, as base64(1) does at 76 columns.
func wrap(s string, n int, sep string) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n])
		b.WriteString(sep)
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

func TestDecodeBase64Variants(t *testing.T) {
	// All byte values, so that '+', '/', '-' and '_' appear in the encodings,
	// and lengths that end with 0, 1 and 2 bytes of a group.
	var all []byte
	for i := range 256 {
		all = append(all, byte(i))
	}
	for _, data := range [][]byte{all, all[:254], all[:253], {0xff}, {0xfb, 0xff}} {
		std := base64.StdEncoding.EncodeToString(data)
		url := base64.URLEncoding.EncodeToString(data)
		tests := []struct {
			name string
			in   string
		}{
			{"std", std},
			{"std unpadded", base64.RawStdEncoding.EncodeToString(data)},
			{"url-safe", url},
			{"url-safe unpadded", base64.RawURLEncoding.EncodeToString(data)},
			{"wrapped LF at 76", wrap(std, 76, "\n") + "\n"},
			{"wrapped CRLF at 64", wrap(std, 64, "\r\n")},
			{"wrapped with spaces", wrap(std, 4, " ")},
			{"tabs and surrounding blanks", " \t" + wrap(std, 10, "\t") + " \n"},
			{"data URI", "data:image/jpeg;base64," + std},
			{"data URI upper case", "DATA:image/png;BASE64," + wrap(std, 76, "\n")},
			{"data URI with parameters", "data:image/png;name=x.png;base64," + url},
			{"extra padding", std + "=="},
		}
		for _, tt := range tests {
			got, err := DecodeBase64(tt.in)
			if err != nil {
				t.Errorf("%d bytes, %s: %v", len(data), tt.name, err)
				continue
			}
			if !bytes.Equal(got, data) {
				t.Errorf("%d bytes, %s: decoded %x, want %x", len(data), tt.name, got, data)
			}
		}
	}
}

func TestDecodeBase64Errors(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantOffset int
		wantReason string
	}{
		{"invalid character", "QUJD!UVG", 4, `unexpected character '!'`},
		{"invalid character after newline", "QUJD\nQU*D", 7, `unexpected character '*'`},
		{"non-ASCII", "QUJD\xc3\xa9", 4, "byte 0xc3"},
		{"quote", `QUJD"`, 4, `'"'`},
		{"data after padding", "QQ==QUJD", 4, "after the '=' padding at offset 2"},
		{"single trailing character", "QUJDR", 5, "single character"},
		{"padding after one character", "QUJDR===", 5, "padding after a single character"},
		{"padding first", "==", 0, "padding before any data"},
		{"empty", "", 0, "no data"},
		{"only whitespace", " \n\t", 3, "no data"},
		{"data URI without base64", "data:text/plain,hello", 0, "not base64-encoded"},
		{"data URI without comma", "data:image/png;base64", 0, "without a ','"},
		{"offset counts the data URI prefix", "data:image/png;base64,QU?D", 24, `'?'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeBase64(tt.in)
			var be *Base64Error
			if !errors.As(err, &be) {
				t.Fatalf("DecodeBase64(%q) = %v, want a *Base64Error", tt.in, err)
			}
			if be.Offset != tt.wantOffset || !strings.Contains(be.Reason, tt.wantReason) {
				t.Errorf("DecodeBase64(%q) = offset %d reason %q, want offset %d reason containing %q", tt.in, be.Offset, be.Reason, tt.wantOffset, tt.wantReason)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Errorf("message %q does not name the offset", err)
			}
		})
	}
}

func BenchmarkDecodeBase64(b *testing.B) {
	data := bytes.Repeat([]byte("prepred benchmark payload"), 4000) // 100 kB
	for _, bc := range []struct {
		name string
		in   string
	}{
		{"plain", base64.StdEncoding.EncodeToString(data)},
		{"wrapped76", wrap(base64.StdEncoding.EncodeToString(data), 76, "\n")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				if _, err := DecodeBase64(bc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
