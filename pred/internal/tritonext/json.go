package tritonext

import (
	"bytes"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// MarshalJSON encodes m as Triton's REST API does: protobuf JSON with the
// proto field names, every field present, and 64-bit integers as JSON
// numbers rather than the strings protobuf JSON makes of them (Triton
// converts them back, and its clients read numbers).
func MarshalJSON(m proto.Message) ([]byte, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if err := numbers(v, m.ProtoReflect().Descriptor()); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// numbers replaces, in the JSON value v of a message md, the strings of
// 64-bit integer fields by numbers.
func numbers(v any, md protoreflect.MessageDescriptor) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	for name, fv := range obj {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			continue
		}
		if fd.IsMap() {
			if m, ok := fv.(map[string]any); ok {
				for k, e := range m {
					r, err := value(e, fd.MapValue())
					if err != nil {
						return err
					}
					m[k] = r
				}
			}
			continue
		}
		if list, ok := fv.([]any); ok && fd.IsList() {
			for i, e := range list {
				r, err := value(e, fd)
				if err != nil {
					return err
				}
				list[i] = r
			}
			continue
		}
		r, err := value(fv, fd)
		if err != nil {
			return err
		}
		obj[name] = r
	}
	return nil
}

func value(v any, fd protoreflect.FieldDescriptor) (any, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return v, numbers(v, fd.Message())
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		s, ok := v.(string)
		if !ok {
			return v, nil
		}
		n := json.Number(s)
		if _, err := n.Int64(); err != nil {
			if _, uerr := fmt.Sscan(s, new(uint64)); uerr != nil {
				return nil, fmt.Errorf("field %s: %q is not an integer", fd.FullName(), s)
			}
		}
		return n, nil
	}
	return v, nil
}
