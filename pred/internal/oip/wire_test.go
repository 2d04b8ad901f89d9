package oip_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/prepred/prepred/pred/internal/infertest"
)

// rawCodec sends and receives messages as the bytes they are, so that a
// test can write the wire format by hand.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// TestWireCompatibility sends a ModelInfer request encoded by hand from the
// field numbers of the published grpc_predict_v2.proto, as Triton's clients
// encode it, and decodes the response the same way: pred's generated code
// plays no part on the client side.
func TestWireCompatibility(t *testing.T) {
	_, conn := client(t)
	env := infertest.Setup(t)

	var input []byte
	input = protowire.AppendTag(input, 1, protowire.BytesType) // name
	input = protowire.AppendString(input, "input")
	input = protowire.AppendTag(input, 2, protowire.BytesType) // datatype
	input = protowire.AppendString(input, "FP32")
	var shape []byte
	for _, d := range []uint64{1, 3, 32, 32} {
		shape = protowire.AppendVarint(shape, d)
	}
	input = protowire.AppendTag(input, 3, protowire.BytesType) // shape, packed
	input = protowire.AppendBytes(input, shape)

	var output []byte
	output = protowire.AppendTag(output, 1, protowire.BytesType) // name
	output = protowire.AppendString(output, "output")

	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType) // model_name
	req = protowire.AppendString(req, "colors")
	req = protowire.AppendTag(req, 2, protowire.BytesType) // model_version
	req = protowire.AppendString(req, "1")
	req = protowire.AppendTag(req, 3, protowire.BytesType) // id
	req = protowire.AppendString(req, "wire-1")
	req = protowire.AppendTag(req, 5, protowire.BytesType) // inputs
	req = protowire.AppendBytes(req, input)
	req = protowire.AppendTag(req, 6, protowire.BytesType) // outputs
	req = protowire.AppendBytes(req, output)
	req = protowire.AppendTag(req, 7, protowire.BytesType) // raw_input_contents
	req = protowire.AppendBytes(req, env.Images([3]uint8{255, 0, 0}))

	var resp []byte
	if err := conn.Invoke(ctx(t), "/inference.GRPCInferenceService/ModelInfer", &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
		t.Fatalf("ModelInfer: %v", err)
	}

	got := map[protowire.Number][][]byte{}
	if err := walk(resp, func(n protowire.Number, v []byte) { got[n] = append(got[n], v) }); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[protowire.Number]string{1: "colors", 2: "1", 3: "wire-1"} {
		if len(got[n]) != 1 || string(got[n][0]) != want {
			t.Errorf("field %d = %q, want %q", n, got[n], want)
		}
	}
	if len(got[5]) != 1 || len(got[6]) != 1 {
		t.Fatalf("outputs (5): %d, raw_output_contents (6): %d; want 1 each", len(got[5]), len(got[6]))
	}
	out := map[protowire.Number][]byte{}
	if err := walk(got[5][0], func(n protowire.Number, v []byte) { out[n] = v }); err != nil {
		t.Fatal(err)
	}
	var dims []int64
	for b := out[3]; len(b) > 0; {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			t.Fatal("bad packed shape")
		}
		dims, b = append(dims, int64(v)), b[n:]
	}
	if string(out[1]) != "output" || string(out[2]) != "FP32" || !slices.Equal(dims, []int64{1, 9}) {
		t.Errorf("output tensor: name %q datatype %q shape %v", out[1], out[2], dims)
	}
	if label := infertest.ColorLabel(got[6][0], 0); label != "red" {
		t.Errorf("red image: %s", label)
	}
}

// walk calls fn for each length-delimited field of a message (the only
// kind the response fields read here have).
func walk(b []byte, fn func(protowire.Number, []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad tag")
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("bad field %d", num)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("bad field %d", num)
		}
		fn(num, v)
		b = b[n:]
	}
	return nil
}

// TestWireCompatibilityBytes sends BYTES inputs encoded by hand as Triton's
// clients encode them, typed (contents.bytes_contents) and raw (each
// element a 4-byte little-endian length and its bytes, built here without
// pred's tensor package), and checks that the response names the output's
// datatype BYTES and carries the strings in that same serialization.
func TestWireCompatibilityBytes(t *testing.T) {
	_, conn := client(t)
	vals := []string{"", "héllo", "日本 text"}
	var serialized []byte
	for _, v := range vals {
		serialized = binary.LittleEndian.AppendUint32(serialized, uint32(len(v)))
		serialized = append(serialized, v...)
	}

	var contents []byte
	for _, v := range vals {
		contents = protowire.AppendTag(contents, 8, protowire.BytesType) // bytes_contents
		contents = protowire.AppendString(contents, v)
	}
	input := func(typed bool) []byte {
		var in []byte
		in = protowire.AppendTag(in, 1, protowire.BytesType) // name
		in = protowire.AppendString(in, "x")
		in = protowire.AppendTag(in, 2, protowire.BytesType) // datatype
		in = protowire.AppendString(in, "BYTES")
		in = protowire.AppendTag(in, 3, protowire.BytesType) // shape, packed
		in = protowire.AppendBytes(in, protowire.AppendVarint(protowire.AppendVarint(nil, 1), 3))
		if typed {
			in = protowire.AppendTag(in, 5, protowire.BytesType) // contents
			in = protowire.AppendBytes(in, contents)
		}
		return in
	}
	for name, typed := range map[string]bool{"typed": true, "raw": false} {
		t.Run(name, func(t *testing.T) {
			var req []byte
			req = protowire.AppendTag(req, 1, protowire.BytesType) // model_name
			req = protowire.AppendString(req, "identity_string")
			req = protowire.AppendTag(req, 5, protowire.BytesType) // inputs
			req = protowire.AppendBytes(req, input(typed))
			if !typed {
				req = protowire.AppendTag(req, 7, protowire.BytesType) // raw_input_contents
				req = protowire.AppendBytes(req, serialized)
			}
			var resp []byte
			if err := conn.Invoke(ctx(t), "/inference.GRPCInferenceService/ModelInfer", &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
				t.Fatalf("ModelInfer: %v", err)
			}
			got := map[protowire.Number][][]byte{}
			if err := walk(resp, func(n protowire.Number, v []byte) { got[n] = append(got[n], v) }); err != nil {
				t.Fatal(err)
			}
			if len(got[5]) != 1 || len(got[6]) != 1 {
				t.Fatalf("outputs (5): %d, raw_output_contents (6): %d; want 1 each", len(got[5]), len(got[6]))
			}
			out := map[protowire.Number][]byte{}
			if err := walk(got[5][0], func(n protowire.Number, v []byte) { out[n] = v }); err != nil {
				t.Fatal(err)
			}
			if string(out[1]) != "y" || string(out[2]) != "BYTES" {
				t.Errorf("output tensor: name %q datatype %q", out[1], out[2])
			}
			if !bytes.Equal(got[6][0], serialized) {
				t.Errorf("raw_output_contents = %q, want %q", got[6][0], serialized)
			}
		})
	}
}
