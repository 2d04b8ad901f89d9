package payload

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestBatchFromJSON(t *testing.T) {
	a, b := []byte("first image"), []byte("second\x00image")
	std, url := base64.StdEncoding.EncodeToString, base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name string
		body string
		want [][]byte
	}{
		{"data array", `{"data": ["` + std(a) + `", "` + std(b) + `"]}`, [][]byte{a, b}},
		{"instances strings", `{"instances": ["` + url(a) + `", "` + std(b) + `"]}`, [][]byte{a, b}},
		{"instances objects", `{"instances": [{"b64": "` + std(a) + `"}, {"data": "` + std(b) + `"}]}`, [][]byte{a, b}},
		{"data URI and wrapped lines", `{"data": ["data:image/jpeg;base64,` + std(a) + `", "` + std(b)[:4] + "\n" + std(b)[4:] + `"]}`, [][]byte{a, b}},
		{"single string", `{"data": "` + std(b) + `"}`, [][]byte{b}},
		{"other fields ignored", `{"model": "x", "data": ["` + std(a) + `"]}`, [][]byte{a}},
		{"JSON whitespace everywhere", " {\n\t\"data\" :\r\n [ \"" + std(a) + "\" ,\n\"" + std(b) + "\" ] \n} \n", [][]byte{a, b}},
		{"escaped slashes", `{"data": ["` + strings.ReplaceAll(std([]byte{0xff, 0xff, 0xff}), "/", `\/`) + `"]}`, [][]byte{{0xff, 0xff, 0xff}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BatchFromJSON([]byte(tt.body), 4)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tt.want, func(x, y []byte) bool { return string(x) == string(y) }) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBatchFromJSONErrors(t *testing.T) {
	img := base64.StdEncoding.EncodeToString([]byte("img"))
	tests := []struct {
		name, body, code, msg string
	}{
		{"empty body", " ", CodeInvalidJSON, "empty"},
		{"not JSON", "data=" + img, CodeInvalidJSON, "not valid JSON"},
		{"neither field", `{"images": []}`, CodeMissingData, `"instances"`},
		{"both fields", `{"data": ["` + img + `"], "instances": ["` + img + `"]}`, CodeInvalidJSON, "both"},
		{"empty array", `{"instances": []}`, CodeMissingData, "empty"},
		{"too many", `{"data": ["` + strings.Repeat(img+`", "`, 4) + img + `"]}`, CodeTooManyImages, "5 images, more than the limit of 4"},
		{"not an array", `{"data": {"b64": "` + img + `"}}`, CodeInvalidJSON, "array"},
		{"item a number", `{"data": ["` + img + `", 7]}`, CodeInvalidJSON, "data[1]"},
		{"item an object without b64", `{"instances": [{"image": "x"}]}`, CodeInvalidJSON, "instances[0]"},
		{"item empty", `{"data": ["` + img + `", " "]}`, CodeMissingData, "data[1] is empty"},
		{"item bad base64", `{"instances": ["` + img + `", "ab#c"]}`, CodeInvalidBase64, "instances[1]"},
		{"trailing garbage", `{"data": ["` + img + `"]} x`, CodeInvalidJSON, "not valid JSON"},
		{"unterminated", `{"data": ["` + img, CodeInvalidJSON, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := BatchFromJSON([]byte(tt.body), 4)
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tt.code || !strings.Contains(pe.Message, tt.msg) {
				t.Errorf("error %v, want code %s with %q", err, tt.code, tt.msg)
			}
		})
	}
}
