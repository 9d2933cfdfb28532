// Package cloudevents_test checks strata against the official CloudEvents
// SDK for Go (github.com/cloudevents/sdk-go/v2): the SDK's HTTP client
// sends to the real strata binary in structured and binary mode, and the
// SDK decodes what strata serves. The SDK is a test dependency only, in
// this module of its own; TestSDKNotInBinary proves the binary holds none
// of it.
package cloudevents_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// bin is the strata binary, built by TestMain as make builds it.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-ce-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "strata")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building strata: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var readyLine = regexp.MustCompile(`strata: serving .* on (https?://\S+)`)

// serve starts `strata serve` on a new data directory and returns its URL.
func serve(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1", "--port", "0", "--data", t.TempDir(), "--auth=none")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") && !strings.HasPrefix(kv, "GATEWAY_INTERFACE=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				url <- m[1]
			}
		}
	}()
	select {
	case u := <-url:
		return u
	case <-time.After(15 * time.Second):
		t.Fatal("strata serve did not start within 15 s")
	}
	return ""
}

// TestSDKNotInBinary: the binary links no CloudEvents SDK (DESIGN.md: the
// envelope is hand-written).
func TestSDKNotInBinary(t *testing.T) {
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "path\tstrata") {
		t.Fatalf("go version -m does not describe strata:\n%s", out)
	}
	for _, m := range []string{"cloudevents", "go.uber.org/zap", "json-iterator"} {
		if strings.Contains(string(out), m) {
			t.Errorf("the strata binary links %s:\n%s", m, out)
		}
	}
}

// sdkEvent is a CloudEvent made with the SDK.
func sdkEvent(t *testing.T, id, subject string) event.Event {
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetSource("https://shop.example/orders")
	e.SetType("com.example.order.placed")
	e.SetSubject(subject)
	e.SetTime(time.Date(2026, 11, 19, 8, 0, 0, 0, time.UTC))
	e.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	e.SetExtension("attempt", 2)
	if err := e.SetData(cloudevents.ApplicationJSON, map[string]any{"sku": "A-1", "qty": 3}); err != nil {
		t.Fatal(err)
	}
	return e
}

// send sends e with the SDK's HTTP client and returns the HTTP status.
func send(t *testing.T, c cloudevents.Client, ctx context.Context, e event.Event) int {
	t.Helper()
	res := c.Send(ctx, e)
	if !cloudevents.IsACK(res) {
		t.Fatalf("send %s: %v", e.ID(), res)
	}
	var hr *cehttp.Result
	if !cloudevents.ResultAs(res, &hr) {
		t.Fatalf("send %s: no HTTP result: %v", e.ID(), res)
	}
	return hr.StatusCode
}

// get sends a GET with an Accept header.
func get(t *testing.T, url, accept string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return res
}

// TestSDKSendsAndReceives: the SDK's client sends to strata in binary
// mode (its default) and structured mode, a resend is acknowledged and
// stored once, a batch the SDK encodes is stored whole, and the SDK reads
// strata's answers — one event, and a page — back into the same events.
func TestSDKSendsAndReceives(t *testing.T) {
	url := serve(t)
	c, err := cloudevents.NewClientHTTP()
	if err != nil {
		t.Fatal(err)
	}
	ctx := cloudevents.ContextWithTarget(context.Background(), url+"/events")
	sent := []event.Event{sdkEvent(t, "o-1", "orders/1"), sdkEvent(t, "o-2", "orders/2")}
	if s := send(t, c, binding.WithForceBinary(ctx), sent[0]); s != 201 {
		t.Fatalf("binary mode: status %d", s)
	}
	if s := send(t, c, binding.WithForceStructured(ctx), sent[1]); s != 201 {
		t.Fatalf("structured mode: status %d", s)
	}
	// A resend, in the other mode: the same event (200, stored once).
	if s := send(t, c, binding.WithForceStructured(ctx), sent[0]); s != 200 {
		t.Fatalf("resend: status %d, want 200", s)
	}
	// Non-JSON data, both modes: blobs.
	for i, force := range []func(context.Context) context.Context{binding.WithForceBinary, binding.WithForceStructured} {
		e := sdkEvent(t, fmt.Sprintf("t-%d", i), "notes/1")
		e.SetData("text/plain", []byte("hello, strata"))
		if s := send(t, c, force(ctx), e); s != 201 {
			t.Fatalf("text/plain data: status %d", s)
		}
		sent = append(sent, e)
	}
	// A batch, encoded by the SDK.
	batch := []event.Event{sdkEvent(t, "b-1", "orders/3"), sdkEvent(t, "b-2", "orders/3")}
	req, err := cehttp.NewHTTPRequestFromEvents(ctx, url+"/events", batch)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 || req.Header.Get("Content-Type") != "application/cloudevents-batch+json" {
		t.Fatalf("batch (%s): %d %s", req.Header.Get("Content-Type"), res.StatusCode, body)
	}
	sent = append(sent, batch...)

	// Receiving: a page of strata's events, decoded by the SDK.
	got, err := cehttp.NewEventsFromHTTPResponse(get(t, url+"/events", "application/cloudevents-batch+json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(sent) {
		t.Fatalf("%d events read back, %d sent", len(got), len(sent))
	}
	for i, g := range got {
		s := sent[i]
		if err := g.Validate(); err != nil {
			t.Errorf("event %d: the SDK finds it invalid: %v", i, err)
		}
		if g.ID() != s.ID() || g.Source() != s.Source() || g.Type() != s.Type() || g.Subject() != s.Subject() || !g.Time().Equal(s.Time()) {
			t.Errorf("event %d: read back %s, sent %s", i, g, s)
		}
		ext := g.Extensions()
		if ext["traceparent"] != s.Extensions()["traceparent"] || fmt.Sprint(ext["attempt"]) != "2" {
			t.Errorf("event %d: extensions %v", i, ext)
		}
		if fmt.Sprint(ext["strataseq"]) != fmt.Sprint(i+1) || len(fmt.Sprint(ext["strataid"])) != 64 || len(fmt.Sprint(ext["strataprev"])) != 64 {
			t.Errorf("event %d: strata's extensions %v", i, ext)
		}
		if s.DataContentType() == cloudevents.ApplicationJSON {
			if !jsonEqual(g.Data(), s.Data()) {
				t.Errorf("event %d: data %s, sent %s", i, g.Data(), s.Data())
			}
			continue
		}
		// A non-JSON payload comes back as its blob's reference; the
		// blob holds the bytes sent.
		var ref struct {
			Blob        string `json:"blob"`
			ContentType string `json:"content_type"`
			Size        int    `json:"size"`
		}
		if err := g.DataAs(&ref); err != nil || ref.ContentType != "text/plain" || ref.Size != len(s.Data()) {
			t.Errorf("event %d: blob reference %s (%v)", i, g.Data(), err)
			continue
		}
		b, _ := io.ReadAll(get(t, url+"/storage/"+ref.Blob, "").Body)
		if !bytes.Equal(b, s.Data()) {
			t.Errorf("event %d: blob %q, sent %q", i, b, s.Data())
		}
	}

	// One event, by its strata id.
	id := fmt.Sprint(got[1].Extensions()["strataid"])
	one, err := cehttp.NewEventFromHTTPResponse(get(t, url+"/events/"+id, "application/cloudevents+json"))
	if err != nil {
		t.Fatal(err)
	}
	if one.ID() != "o-2" || one.Subject() != "orders/2" || fmt.Sprint(one.Extensions()["strataversion"]) != "1" {
		t.Fatalf("GET /events/<id>: %s", one)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
}
