package oiprest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prepred/prepred/pred/internal/infertest"
	"github.com/prepred/prepred/pred/internal/oip"
	"github.com/prepred/prepred/pred/internal/oiprest"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/internal/testmodels"
	"github.com/prepred/prepred/pred/predtest"
)

// fuzzModels are the models a fuzzed request may go to, by index.
var fuzzModels = append([]string{"colors", testmodels.DTypes, "nope"}, testmodels.IdentityModels()...)

// FuzzInfer posts arbitrary bodies, with and without binary tensor data,
// to the infer endpoint. Every request must end in a client error with an
// {"error"} body, or in a well-formed response whose binary parts add up.
func FuzzInfer(f *testing.F) {
	env := infertest.Setup(f)
	red := env.Images([3]uint8{255, 0, 0})
	jsonRed := `{"id":"1","inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":` + floatsJSON(predtest.Float32s(red)) + `}]}`
	f.Add(uint8(0), jsonRed, []byte(nil), false)
	binRed := `{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","parameters":{"binary_data_size":12288}}],"outputs":[{"name":"output","parameters":{"binary_data":true}}]}`
	f.Add(uint8(0), binRed, red, true)
	var inputs []string
	var bin []byte
	for i, s := range testmodels.Samples() {
		dt := oip.DataTypeName(s.DType)
		f.Add(uint8(3+i), `{"inputs":[{"name":"x","shape":[1,3],"datatype":"`+dt+`","data":`+s.JSON+`}],"outputs":[{"name":"y"}]}`, []byte(nil), false)
		f.Add(uint8(3+i), `{"inputs":[{"name":"x","shape":[1,3],"datatype":"`+dt+`","parameters":{"binary_data_size":`+strconv.Itoa(len(s.Raw))+`}}],"parameters":{"binary_data_output":true}}`, s.Raw, true)
		inputs = append(inputs, `{"name":"`+s.Name+`","shape":[1,3],"datatype":"`+dt+`","parameters":{"binary_data_size":`+strconv.Itoa(len(s.Raw))+`}}`)
		bin = append(bin, s.Raw...)
	}
	f.Add(uint8(1), `{"inputs":[`+strings.Join(inputs, ",")+`]}`, bin, true)
	f.Add(uint8(4), `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP16","data":[[1e5],[-0.0,"NaN"]]}]}`, []byte(nil), false)
	// BYTES: escapes, an element JSON cannot carry (so the output goes
	// binary), malformed serializations, a NUL byte.
	strModel := slices.Index(fuzzModels, "identity_string")
	if strModel < 0 {
		f.Fatal("identity_string is not among the fuzzed models")
	}
	str := uint8(strModel)
	bytesInput := func(bin []byte) string {
		return `{"inputs":[{"name":"x","shape":[1,3],"datatype":"BYTES","parameters":{"binary_data_size":` + strconv.Itoa(len(bin)) + `}}]}`
	}
	f.Add(str, `{"inputs":[{"name":"x","shape":[1,3],"datatype":"BYTES","data":[["a\"\\"],["\u00e9\n","\ud83d\ude00<&>"]]}]}`, []byte(nil), false)
	for _, bin := range [][]byte{
		tensor.FromStrings([]string{"ok", "\xff\xfe", "caf\xe9"}),
		append(tensor.FromStrings([]string{"a", "b"}), 10, 0, 0, 0, 'x'),
		append(tensor.FromStrings([]string{"a", "b", "c"}), 'z'),
		tensor.FromStrings([]string{"a", "\x00", "c"}),
	} {
		f.Add(str, bytesInput(bin), bin, true)
	}

	h := oiprest.New(env.Runner, oiprest.Options{})
	f.Fuzz(func(t *testing.T, model uint8, header string, binary []byte, withLength bool) {
		path := "/v2/models/" + fuzzModels[int(model)%len(fuzzModels)] + "/infer"
		req := httptest.NewRequest("POST", path, strings.NewReader(header+string(binary)))
		if withLength {
			req.Header.Set(oiprest.HeaderLength, strconv.Itoa(len(header)))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if rec.Code != http.StatusOK {
			var e struct {
				Error *string `json:"error"`
			}
			if !slices.Contains([]int{400, 404, 503}, rec.Code) || json.Unmarshal(body, &e) != nil || e.Error == nil {
				t.Fatalf("status %d: %s", rec.Code, body)
			}
			return
		}
		n := len(body)
		if hl := rec.Header().Get(oiprest.HeaderLength); hl != "" {
			var err error
			if n, err = strconv.Atoi(hl); err != nil || n > len(body) {
				t.Fatalf("%s %q for %d bytes", oiprest.HeaderLength, hl, len(body))
			}
		}
		var resp struct {
			Outputs []struct {
				Parameters struct {
					Size *int `json:"binary_data_size"`
				} `json:"parameters"`
				Data json.RawMessage `json:"data"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(body[:n], &resp); err != nil {
			t.Fatalf("response %s: %v", body[:n], err)
		}
		total := 0
		for _, o := range resp.Outputs {
			if o.Parameters.Size != nil {
				total += *o.Parameters.Size
			} else if o.Data == nil {
				t.Fatalf("an output has neither data nor binary_data_size: %s", body[:n])
			}
		}
		if total != len(body)-n {
			t.Fatalf("binary_data_size adds up to %d, the body has %d binary bytes", total, len(body)-n)
		}
	})
}
