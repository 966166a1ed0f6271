package exec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode"
)

// decodeStrict decodes out, a command's stdout, into v: exactly one JSON
// object, no unknown fields. Its errors describe the problem without
// quoting any of out, which may hold a secret.
func decodeStrict(out []byte, v any, allowed string) error {
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describe(err, allowed)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("stdout holds more than one JSON value; print exactly one object")
	}
	return nil
}

func describe(err error, allowed string) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var contract contractError
	switch {
	case errors.As(err, &contract):
		return contract
	case errors.Is(err, io.EOF):
		return errors.New("stdout is empty; the command must print a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("stdout ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return fmt.Errorf("stdout is not valid JSON (syntax error at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return errors.New("stdout is not a JSON object")
		}
		return fmt.Errorf("field %q has the wrong JSON type; expected %s", typ.Field, jsonType(typ.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return fmt.Errorf("stdout has a field that is not part of the contract; the allowed fields are %s", allowed)
	}
	return errors.New("stdout is not the expected JSON")
}

func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "a list"
	}
	return t.String()
}

// rawField is a JSON string that may also be null.
type rawField struct {
	s       string
	null    bool
	present bool
}

func (r *rawField) UnmarshalJSON(b []byte) error {
	r.present = true
	if string(b) == "null" {
		r.null = true
		return nil
	}
	if json.Unmarshal(b, &r.s) != nil {
		return contractError("the field must be a string or null")
	}
	return nil
}

// contractError is an error about the shape of a command's output that
// quotes none of it.
type contractError string

func (e contractError) Error() string { return string(e) }

// checkID validates a key id printed by a command.
func checkID(id string) error {
	switch {
	case id == "":
		return errors.New(`the key "id" is empty`)
	case len(id) > 512:
		return errors.New(`the key "id" is longer than 512 bytes`)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return errors.New(`the key "id" contains control characters`)
	}
	return nil
}
