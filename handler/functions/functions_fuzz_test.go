package functions

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"switchboard/handler/switchboard"
)

// FuzzDecode feeds arbitrary bytes to the invocation decoder: it never
// panics, refuses only with EINVALID, and what it accepts has non-nil Data
// and Metadata that survive re-encoding unchanged; the Metadata readers
// never panic on any of it.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{}`, `null`, `[]`, `{"Data":null,"Metadata":null}`,
		`{"Data":{"timer":{"IsPastDue":false,"ScheduleStatus":null}},"Metadata":{"sys":{"MethodName":"PresencePoll"}}}`,
		`{"Data":{"message":"eyJhIjoxfQ=="},"Metadata":{"DeliveryCount":"\"2\"","MessageId":"\"abc\"","SequenceNumber":7}}`,
		`{"Data":[1],"Metadata":{}}`, `{"Data":{}} {}`, `{"Data":{"a":1}`, `"Data"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Decode(bytes.NewReader(data))
		if err != nil {
			if got := switchboard.ErrorCode(err); got != switchboard.EINVALID {
				t.Fatalf("Decode error code = %q (%v), want %q", got, err, switchboard.EINVALID)
			}
			return
		}
		if inv.Data == nil || inv.Metadata == nil {
			t.Fatalf("Decode(%q): nil Data or Metadata", data)
		}
		for k := range inv.Metadata {
			_ = inv.MetadataString(k)
			_, _ = inv.MetadataInt(k)
		}
		again, err := json.Marshal(map[string]any{"Data": inv.Data, "Metadata": inv.Metadata})
		if err != nil {
			t.Fatalf("re-encoding %q: %v", data, err)
		}
		inv2, err := Decode(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("re-encoded invocation %s refused: %v", again, err)
		}
		if !sameJSON(t, inv.Data, inv2.Data) || !sameJSON(t, inv.Metadata, inv2.Metadata) {
			t.Fatalf("re-encoding changed the invocation: %q became %s", data, again)
		}
	})
}

func sameJSON(t *testing.T, a, b map[string]json.RawMessage) bool {
	t.Helper()
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			return false
		}
		var x, y any
		if json.Unmarshal(va, &x) != nil || json.Unmarshal(vb, &y) != nil {
			t.Fatalf("value of %q is not JSON: %s / %s", k, va, vb)
		}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// FuzzDecodeMessageBody: the body decoder never panics, and a JSON object
// or array body comes back byte for byte however the host renders it: as
// itself, as a JSON string holding it, or as base64 of it.
func FuzzDecodeMessageBody(f *testing.F) {
	for _, seed := range []string{
		`{"a":1}`, `[1,2]`, `"{\"a\":1}"`, `"eyJhIjoxfQ=="`, `"hello"`, `"AAEC/w=="`, `null`, `12`, ` {"x": "y"} `, `"`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = DecodeMessageBody(json.RawMessage(raw))
		body := bytes.TrimSpace(raw)
		if len(body) == 0 || (body[0] != '{' && body[0] != '[') || !json.Valid(body) || !utf8.Valid(body) {
			return
		}
		if got := DecodeMessageBody(json.RawMessage(raw)); !bytes.Equal(got, body) {
			t.Fatalf("as JSON: %q, want %q", got, body)
		}
		quoted, err := json.Marshal(string(body))
		if err != nil {
			t.Fatal(err)
		}
		if got := DecodeMessageBody(quoted); !bytes.Equal(got, body) {
			t.Fatalf("as a JSON string %s: %q, want %q", quoted, got, body)
		}
		b64, _ := json.Marshal(base64.StdEncoding.EncodeToString(body))
		if got := DecodeMessageBody(b64); !bytes.Equal(got, body) {
			t.Fatalf("as base64 %s: %q, want %q", b64, got, body)
		}
	})
}
