package payload

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestFromJSON(t *testing.T) {
	img := []byte("\xff\xd8\xff\xe0 not really a JPEG, but bytes all the same \x00\x01\xfe")
	std := base64.StdEncoding.EncodeToString(img)
	wrapped := wrap(std, 76, "\n") + "\n"
	tests := []struct {
		name string
		body string
	}{
		{"classic", `{"data": "` + std + `"}`},
		// What `(echo -n '{"data": "'; base64 f; echo '"}') | curl --data-binary @-` sends: raw newlines inside the string.
		{"raw newlines kept", `{"data": "` + wrapped + `"}` + "\n"},
		{"raw CRLF", "{\"data\":\r\n \"" + wrap(std, 76, "\r\n") + "\"}"},
		{"JSON-escaped newlines", `{"data": "` + strings.ReplaceAll(wrapped, "\n", `\n`) + `"}`},
		{"escaped slashes", `{"data": "` + strings.ReplaceAll(std, "/", `\/`) + `"}`},
		{"other fields ignored", `{"model": "x", "data": "` + std + `", "n": 1}`},
		{"data URI", `{"data": "data:image/jpeg;base64,` + std + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromJSON(nil, []byte(tt.body))
			if err != nil {
				t.Fatalf("FromJSON: %v", err)
			}
			if string(got) != string(img) {
				t.Errorf("FromJSON = %q, want %q", got, img)
			}
			// Into a buffer that is large enough: its storage is used.
			dst := make([]byte, 1, 4096)
			got, err = FromJSON(dst, []byte(tt.body))
			if err != nil || string(got) != string(img) || &got[0] != &dst[0] {
				t.Errorf("FromJSON(dst) = %q, %v; in dst: %v", got, err, err == nil && &got[0] == &dst[0])
			}
		})
	}
}

func TestFromJSONErrors(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantCode string
		wantMsg  string
	}{
		{"empty body", "", CodeInvalidJSON, "empty request body"},
		{"blank body", " \n", CodeInvalidJSON, "empty request body"},
		{"not JSON", "data=QUJD", CodeInvalidJSON, "not valid JSON (at offset 1"},
		{"truncated JSON", `{"data": "QUJD`, CodeInvalidJSON, "not valid JSON"},
		{"trailing garbage", `{"data": "QUJD"} x`, CodeInvalidJSON, "not valid JSON"},
		{"array", `["QUJD"]`, CodeInvalidJSON, "must be a JSON object"},
		{"string", `"QUJD"`, CodeInvalidJSON, "must be a JSON object"},
		{"data is a number", `{"data": 42}`, CodeInvalidJSON, `"data" must be a base64 string, not a JSON number`},
		{"data is an object", `{"data": {"b64": "QUJD"}}`, CodeInvalidJSON, `"data" must be a base64 string, not a JSON object`},
		{"no data", `{"image": "QUJD"}`, CodeMissingData, `no "data" field`},
		{"null data", `{"data": null}`, CodeMissingData, `no "data" field`},
		{"empty data", `{"data": ""}`, CodeMissingData, `"data" is empty`},
		{"blank data", `{"data": "  \n "}`, CodeMissingData, `"data" is empty`},
		{"bad base64", `{"data": "QUJD$QUJD"}`, CodeInvalidBase64, "at offset 4"},
		{"bad base64 behind an escape", `{"data": "QUJD\u0024QUJD"}`, CodeInvalidBase64, "at offset 4: unexpected character '$'"},
		{"control character", "{\"data\": \"QUJD\x01\"}", CodeInvalidBase64, "byte 0x01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromJSON(nil, []byte(tt.body))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("FromJSON(%q) = %v, want a *payload.Error", tt.body, err)
			}
			if pe.Code != tt.wantCode || !strings.Contains(pe.Message, tt.wantMsg) {
				t.Errorf("FromJSON(%q) = %s %q, want %s with %q", tt.body, pe.Code, pe.Message, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

func TestClassicData(t *testing.T) {
	tests := []struct {
		body   string
		want   string
		wantOK bool
	}{
		{`{"data": "QUJD"}`, "QUJD", true},
		{"\r\n {\t\"data\"\n:\n\"QU\nJD\" } \n", "QU\nJD", true},
		{`{"data":""}`, "", true},
		{`{"data": "QU\/JD"}`, "", false},       // escapes: the JSON decoder's job
		{`{"data": "QUJD", "x": 1}`, "", false}, // other fields
		{`{"x": 1, "data": "QUJD"}`, "", false},
		{`{"data": "QUJD"} {}`, "", false},
		{`{"data": "QUJD"`, "", false},
		{`{"data": 1}`, "", false},
		{`["data"]`, "", false},
		{``, "", false},
	}
	for _, tt := range tests {
		got, ok := classicData([]byte(tt.body))
		if ok != tt.wantOK || string(got) != tt.want {
			t.Errorf("classicData(%q) = %q, %v; want %q, %v", tt.body, got, ok, tt.want, tt.wantOK)
		}
	}
}

func BenchmarkFromJSON(b *testing.B) {
	img := make([]byte, 45_000) // the size of a 500x375 JPEG
	for i := range img {
		img[i] = byte(i * 7)
	}
	body := []byte(`{"data": "` + base64.StdEncoding.EncodeToString(img) + `"}`)
	buf := make([]byte, len(body))
	var img2 []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		copy(buf, body)
		var err error
		if img2, err = FromJSON(img2, buf); err != nil {
			b.Fatal(err)
		}
	}
}
