package functions

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"switchboard/handler/switchboard"
)

func serve(t *testing.T, d *Dispatcher) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST /{name}", d)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type wireReply struct {
	Outputs     map[string]any
	Logs        []string
	ReturnValue any
}

func post(t *testing.T, url, body string) (int, wireReply) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r wireReply
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("reply is not the protocol's JSON: %v: %s", err, raw)
	}
	if r.Outputs == nil || r.Logs == nil {
		t.Errorf("reply lacks Outputs or Logs: %s", raw)
	}
	return resp.StatusCode, r
}

func TestDispatcherRoutesByFunctionName(t *testing.T) {
	d := NewDispatcher(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var got Timer
	d.Handle("PresencePoll", TimerFunc("timer", func(ctx context.Context, inv *Invocation, tm Timer) error {
		got = tm
		inv.Logf("polled")
		return nil
	}))
	d.Handle("Fails", func(ctx context.Context, inv *Invocation) (Result, error) {
		return Result{}, switchboard.Errorf(switchboard.EUNAVAILABLE, "test", "broker down")
	})
	d.Handle("Panics", func(ctx context.Context, inv *Invocation) (Result, error) { panic("boom") })
	srv := serve(t, d)

	status, rep := post(t, srv.URL+"/presencepoll", `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2026-11-22T12:00:00Z","Next":"2026-11-22T12:00:30Z","LastUpdated":"2026-11-22T12:00:00Z"},"IsPastDue":true}},"Metadata":{"sys":{"MethodName":"PresencePoll"}}}`)
	if status != http.StatusOK {
		t.Errorf("status = %d, want 200", status)
	}
	if !got.IsPastDue || got.ScheduleStatus == nil || got.ScheduleStatus.Next.Second() != 30 {
		t.Errorf("timer payload not decoded: %+v", got)
	}
	if len(rep.Logs) != 1 || rep.Logs[0] != "polled" {
		t.Errorf("Logs = %v, want [polled]", rep.Logs)
	}

	cases := []struct {
		name, path, body string
		want             int
	}{
		{"function error fails the invocation", "/Fails", `{"Data":{},"Metadata":{}}`, 500},
		{"panic fails the invocation, not the handler", "/Panics", `{}`, 500},
		{"unknown function", "/Nope", `{}`, 404},
		{"malformed JSON", "/PresencePoll", `{"Data":`, 400},
		{"Data not an object", "/PresencePoll", `{"Data":[1,2]}`, 400},
		{"trailing garbage", "/PresencePoll", `{} {}`, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, rep := post(t, srv.URL+c.path, c.body)
			if status != c.want {
				t.Errorf("status = %d, want %d (logs %v)", status, c.want, rep.Logs)
			}
		})
	}
	// The handler is still serving after the panic.
	if status, _ := post(t, srv.URL+"/PresencePoll", `{"Data":{"timer":null}}`); status != 200 {
		t.Errorf("after a panic: status %d, want 200", status)
	}
}

func TestServiceBusMetadataInBothEncodings(t *testing.T) {
	cases := []struct {
		name string
		meta string
	}{
		{"plain values", `{"MessageId":"m-1","DeliveryCount":3,"SequenceNumber":42,"EnqueuedTimeUtc":"2026-11-22T12:00:00Z"}`},
		{"values encoded twice", `{"MessageId":"\"m-1\"","DeliveryCount":"3","SequenceNumber":"\"42\"","EnqueuedTimeUtc":"\"2026-11-22T12:00:00Z\""}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv, err := Decode(strings.NewReader(`{"Data":{"message":{"taskId":"x"}},"Metadata":` + c.meta + `}`))
			if err != nil {
				t.Fatal(err)
			}
			var got Message
			_, err = ServiceBusFunc("message", func(ctx context.Context, inv *Invocation, m Message) error { got = m; return nil })(context.Background(), inv)
			if err != nil {
				t.Fatal(err)
			}
			if got.MessageID != "m-1" || got.DeliveryCount != 3 || got.SequenceNumber != 42 || got.EnqueuedTime.Hour() != 12 {
				t.Errorf("got %+v", got)
			}
			if string(got.Body) != `{"taskId":"x"}` {
				t.Errorf("body = %s", got.Body)
			}
		})
	}
}

func TestServiceBusWithoutMessageIsInvalid(t *testing.T) {
	inv, _ := Decode(strings.NewReader(`{"Data":{}}`))
	_, err := ServiceBusFunc("message", func(context.Context, *Invocation, Message) error { return nil })(context.Background(), inv)
	if switchboard.ErrorCode(err) != switchboard.EINVALID {
		t.Errorf("err = %v, want EINVALID", err)
	}
}

func TestDecodeMessageBody(t *testing.T) {
	cases := []struct {
		name, raw, want string
	}{
		{"JSON object", `{"a":1}`, `{"a":1}`},
		{"JSON text in a string", `"{\"a\":1}"`, `{"a":1}`},
		{"base64 of JSON", `"eyJhIjoxfQ=="`, `{"a":1}`},
		{"plain text", `"hello world"`, `hello world`},
		{"text that happens to be base64 of text stays text", `"abcd"`, `abcd`},
		{"base64 of non-JSON bytes stays as sent", `"AAEC/w=="`, "AAEC/w=="},
		{"base64 of a JSON string", `"ImhpIg=="`, `"hi"`},
		{"JSON array", `[1,2]`, `[1,2]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(DecodeMessageBody(json.RawMessage(c.raw))); got != c.want {
				t.Errorf("DecodeMessageBody(%s) = %q, want %q", c.raw, got, c.want)
			}
		})
	}
}

func TestDecodeRejectsOversizedInvocation(t *testing.T) {
	big := `{"Data":{"message":"` + strings.Repeat("a", MaxInvocationBytes) + `"}}`
	_, err := Decode(strings.NewReader(big))
	if !errors.Is(err, err) || switchboard.ErrorCode(err) != switchboard.EINVALID {
		t.Errorf("err = %v, want EINVALID", err)
	}
}
