package api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"strata/auth"
	"strata/blobs"
	"strata/internal/fileutil"
	"strata/jsonx"
	"strata/log"
	"strata/projections"
	"strata/query"
	"strata/quota"
)

// statusOf is the one table of error code → HTTP status. A handler names
// the code of what went wrong (errorf("invalid_parameter", …)) or returns
// the lower packages' error as it is; only this file chooses a status
// (TestStatusOnlyInErrors keeps it so). The codes are part of the API:
// clients test them, so a code keeps its meaning once published.
var statusOf = map[string]int{
	// 400: the request is wrong; the message names what, in the client's
	// own terms.
	"invalid_body":      http.StatusBadRequest,
	"invalid_tenant":    http.StatusBadRequest,
	"invalid":           http.StatusBadRequest,
	"invalid_role":      http.StatusBadRequest,
	"invalid_expires":   http.StatusBadRequest,
	"invalid_if_match":  http.StatusBadRequest,
	"invalid_event":     http.StatusBadRequest,
	"invalid_parameter": http.StatusBadRequest,
	"invalid_id":        http.StatusBadRequest,
	"invalid_login":     http.StatusBadRequest,
	"invalid_hash":      http.StatusBadRequest,
	"hash_mismatch":     http.StatusBadRequest,
	"body_unreadable":   http.StatusBadRequest,
	"empty_body":        http.StatusBadRequest,
	// a CloudEvent strata cannot store (api/cloudevents_in.go): the
	// message and "attribute" name the attribute
	"invalid_cloudevent": http.StatusBadRequest,
	// a client's event of a type or on an entity the server keeps for its
	// own records (api/reserved.go)
	"reserved_type":   http.StatusBadRequest,
	"reserved_entity": http.StatusBadRequest,
	// projections: a bad definition (naming its field), a bad name, a
	// result without keys read by key
	"invalid_definition": http.StatusBadRequest,
	"invalid_name":       http.StatusBadRequest,
	"not_keyed":          http.StatusBadRequest,
	// consumers: a position not on the chain (naming its field), a
	// Strata-Wait-Consumer header that is malformed or names no consumer
	"invalid_position": http.StatusBadRequest,
	"invalid_header":   http.StatusBadRequest,
	"unknown_consumer": http.StatusBadRequest,
	// coordination: a cache key, mutex or channel name outside its
	// characters (coord.ValidKey)
	"invalid_key": http.StatusBadRequest,
	// 401: no credentials, or credentials that are not valid.
	"unauthorized":  http.StatusUnauthorized,
	"token_expired": http.StatusUnauthorized,
	"session_ended": http.StatusUnauthorized,
	// the credential was for a tenant since deleted (auth.Principal.Reaches)
	"credential_revoked": http.StatusUnauthorized,
	// 403: valid credentials that may not do this.
	"forbidden":        http.StatusForbidden,
	"wrong_tenant":     http.StatusForbidden,
	"no_grant":         http.StatusForbidden,
	"tenant_suspended": http.StatusForbidden,
	"cors_denied":      http.StatusForbidden,
	// 404
	"not_found":    http.StatusNotFound,
	"not_on_chain": http.StatusNotFound,
	"no_route":     http.StatusNotFound,
	"no_tenant":    http.StatusNotFound,
	"no_accounts":  http.StatusNotFound,
	"setup_off":    http.StatusNotFound,
	// 410: a deleted entity; the answer carries its last version.
	"gone": http.StatusGone,
	// 405
	"method_not_allowed": http.StatusMethodNotAllowed,
	// 412, 416: a blob's conditional or range request (contentError).
	"precondition_failed":   http.StatusPreconditionFailed,
	"range_not_satisfiable": http.StatusRequestedRangeNotSatisfiable,
	// 409: the request conflicts with what is stored; the answer carries
	// the current value.
	"exists":           http.StatusConflict,
	"version_conflict": http.StatusConflict,
	"head_conflict":    http.StatusConflict,
	"key_conflict":     http.StatusConflict,
	"already_set_up":   http.StatusConflict,
	// a projection whose reducer failed at an event (the answer names it),
	// a definition this server cannot read, a replay already finished
	"projection_failed":     http.StatusConflict,
	"unreadable_definition": http.StatusConflict,
	"replay_finished":       http.StatusConflict,
	// a consumer read by another reader (with its lease's end), a commit
	// before the position without reset (with the position)
	"lease_held":      http.StatusConflict,
	"position_behind": http.StatusConflict,
	// a mutex held by another (the answer carries its expiry); an unlock
	// whose token is not the holder's
	"mutex_held": http.StatusConflict,
	"not_holder": http.StatusConflict,
	// another compaction of the tenant's log is running (Retry-After)
	"compaction_busy": http.StatusConflict,
	// 411, 413, 415: the body.
	"length_required":        http.StatusLengthRequired,
	"body_too_large":         http.StatusRequestEntityTooLarge,
	"event_too_large":        http.StatusRequestEntityTooLarge,
	"too_many_events":        http.StatusRequestEntityTooLarge,
	"blob_too_large":         http.StatusRequestEntityTooLarge,
	"unsupported_media_type": http.StatusUnsupportedMediaType,
	// 429 and 503 carry Retry-After.
	"too_many_failures": http.StatusTooManyRequests,
	// every slot of the mutex table where the key goes holds a lock;
	// Retry-After says when the first expires
	"mutex_table_full": http.StatusTooManyRequests,
	// quota_exceeded's status depends on the quota (quotaError).
	"quota_exceeded": http.StatusTooManyRequests,
	// The server's faults: see faultMessage.
	"busy":       http.StatusServiceUnavailable,
	"overloaded": http.StatusServiceUnavailable,
	"log_failed": http.StatusServiceUnavailable,
	// the failed-login counters cannot be written: logins are refused
	"throttle_unavailable": http.StatusServiceUnavailable,
	"internal":             http.StatusInternalServerError,
	"corrupt":              http.StatusInternalServerError,
	"disk_full":            http.StatusInsufficientStorage,
	// broadcast under CGI, where no process outlives its request
	"needs_server": http.StatusNotImplemented,
	// GET /ready: the server cannot take writes (the reasons say why)
	"not_ready": http.StatusServiceUnavailable,
}

// authFailure reports whether an answer with the error code refused a
// request for its credentials (401) or its access (forbidden,
// wrong_tenant): strata_auth_failures_total.
func authFailure(code string) bool {
	return statusOf[code] == http.StatusUnauthorized || code == "forbidden" || code == "wrong_tenant"
}

// faultMessage is what a client is told of a fault on the server's side
// (a 5xx answer other than a quota's): what failed in general terms,
// never an error's text, which may hold paths and system errors. That goes
// to the server's log, and the answer gives the request id to find it
// there (writeError). Any other 5xx is "internal".
var faultMessage = map[string]string{
	"busy":                 "the log is busy with other writers; retry",
	"overloaded":           "the server holds as many append requests in memory as it may; retry",
	"log_failed":           "a write to this log failed; it refuses appends until reopened",
	"throttle_unavailable": "logins cannot be checked at the moment; retry",
	"internal":             "internal error",
	"corrupt":              "stored data failed its integrity check; the server's operator must look at it",
	"disk_full":            "no space left on the server's disk; nothing was stored",
}

// fault returns the error answered with one of faultMessage's codes.
func fault(code string) *apiError { return errorf(code, "%s", faultMessage[code]) }

// isFault reports whether e is a fault on the server's side, which is
// logged and answered in general terms. A quota's 507 and needs_server's
// 501 are not: the client is told exactly why, and nothing failed.
func (e *apiError) isFault() bool {
	return e.status >= 500 && e.code != "quota_exceeded" && e.code != "needs_server" && e.code != "not_ready"
}

// apiError is an error with its HTTP answer.
type apiError struct {
	status  int
	code    string
	message string
	// extra members of the error object, such as the current value after a
	// conflict.
	extra map[string]any
	// retry is the Retry-After of a 429 or 503 (1 s when zero), or of
	// another answer that sets it (a consumer's lease held, 409).
	retry time.Duration
}

func (e *apiError) Error() string { return e.message }

// errorf makes the error answered with code, its status from statusOf, and
// the message format (about the client's request: never a server path or
// an internal error's text).
func errorf(code, format string, args ...any) *apiError {
	status, ok := statusOf[code]
	if !ok {
		// A code missing from the table is a bug, which
		// TestStatusOnlyInErrors catches; answer it as one.
		status = http.StatusInternalServerError
	}
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// challenge reports whether e asks for credentials (a 401, which carries
// WWW-Authenticate).
func (e *apiError) challenge() bool { return e.status == http.StatusUnauthorized }

// heldBack reports whether e refuses a client that is held back for a
// while (429).
func (e *apiError) heldBack() bool { return e.status == http.StatusTooManyRequests }

// quotaError is the answer for a request over one of its tenant's quotas.
func quotaError(e *quota.ExceededError) *apiError {
	ae := errorf("quota_exceeded", "%s", e.Error())
	switch e.Quota {
	case quota.QuotaStorageBytes:
		ae.status = http.StatusInsufficientStorage
	case quota.QuotaMaxBlob:
		ae.status = http.StatusRequestEntityTooLarge
	case quota.QuotaProjections:
		// Not a matter of time: only deleting a projection helps.
		ae.status = http.StatusForbidden
	case quota.QuotaCacheEntries, quota.QuotaCacheBytes:
		// Like storage: room must be made (or expire) first.
		ae.status = http.StatusInsufficientStorage
	}
	ae.extra = map[string]any{"quota": e.Quota, "limit": e.Limit}
	ae.retry = e.RetryAfter
	return ae
}

// retryAfter is the Retry-After sent with 503 answers, in seconds.
const retryAfter = 1

// classify maps any error to its answer.
func classify(err error) *apiError {
	var ae *apiError
	var fe *jsonx.FieldError
	var ie *log.InvalidError
	var vc *log.VersionConflictError
	var hc *log.HeadConflictError
	var kc *log.KeyConflictError
	var qe *quota.ExceededError
	if ce := coordError(err); ce != nil {
		return ce
	}
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &qe):
		return quotaError(qe)
	case errors.As(err, &fe):
		e := errorf("invalid_event", "%s", fe.Error())
		e.extra = map[string]any{"index": fe.Index, "field": fe.Field}
		return e
	case errors.As(err, &ie):
		code := "invalid_event"
		if errors.Is(ie.Err, log.ErrTooLarge) {
			code = "event_too_large"
		}
		e := errorf(code, "%s", ie.Error())
		e.extra = map[string]any{"index": ie.Index, "field": ie.Field}
		return e
	case errors.As(err, &vc):
		e := errorf("version_conflict", "%s", vc.Error())
		e.extra = map[string]any{"index": vc.Index, "entity": vc.Entity, "expected_version": vc.Expected, "current_version": vc.Current}
		return e
	case errors.As(err, &hc):
		e := errorf("head_conflict", "the log's head is %x (seq %d), not the If-Match head %x: someone appended since you last synced", hc.Current.ID, hc.Current.Seq, hc.Expected)
		e.extra = map[string]any{"current_head": headJSON(hc.Current)}
		return e
	case errors.As(err, &kc):
		e := errorf("key_conflict", "%s", kc.Error())
		e.extra = map[string]any{"index": kc.Index, "key": kc.Key, "existing_id": kc.Existing.IDString(), "existing_seq": kc.Existing.Seq}
		return e
	case errors.Is(err, query.ErrFromNotFound):
		return errorf("not_on_chain", "the from id is not on this chain: the client's history has diverged from the server's, or the id is wrong")
	case errors.Is(err, query.ErrToNotFound):
		return errorf("not_on_chain", "the to id is not on this chain")
	case errors.Is(err, log.ErrNotFound):
		return errorf("not_found", "no such event")
	case errors.Is(err, auth.ErrThrottle):
		// Failing closed: a login that cannot be counted is not checked.
		return fault("throttle_unavailable")
	case errors.Is(err, errOverloaded):
		return fault("overloaded")
	case errors.Is(err, fileutil.ErrLockTimeout): // every package's lock timeout wraps it
		return fault("busy")
	case errors.Is(err, log.ErrNoSpace), errors.Is(err, blobs.ErrNoSpace):
		return fault("disk_full")
	case errors.Is(err, log.ErrFailed):
		return fault("log_failed")
	case errors.Is(err, log.ErrCorrupt):
		return fault("corrupt")
	case errors.Is(err, blobs.ErrNotFound):
		return errorf("not_found", "no such blob")
	case errors.Is(err, blobs.ErrInvalidHash):
		return errorf("invalid_hash", "a blob hash is 64 lowercase hex digits (BLAKE3-256)")
	case errors.Is(err, blobs.ErrHashMismatch):
		return errorf("hash_mismatch", "the content does not hash to the hash in the path; nothing was stored")
	case errors.Is(err, blobs.ErrTooLarge):
		var te *blobs.TooLargeError
		if errors.As(err, &te) {
			return errorf("blob_too_large", "the blob is over this server's limit of %d bytes; nothing was stored", te.Limit)
		}
		return errorf("blob_too_large", "the blob is over this server's size limit; nothing was stored")
	}
	return fault("internal")
}

// entityError is the answer for an error of a read of entity's state.
func entityError(err error, entity string) error {
	switch {
	case errors.Is(err, projections.ErrNoEntity):
		e := errorf("not_found", "entity %q has no events at that point", clip(entity))
		e.extra = map[string]any{"entity": entity}
		return e
	case errors.Is(err, projections.ErrNoVersion):
		e := errorf("not_found", "entity %q has no such version", clip(entity))
		e.extra = map[string]any{"entity": entity}
		return e
	case errors.Is(err, projections.ErrNotOnChain):
		return errorf("not_on_chain", "the at id is not on this chain")
	}
	return err
}

// writeError sends err as a JSON error answer:
//
//	{"error":{"code":"…","message":"…","request_id":"…", …}}
//
// A 5xx answer's message is a general one with the request id; err itself,
// with whatever paths and system errors it holds, goes to the server's log
// under that id, for the operator.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(err)
	if ri := infoOf(r); ri != nil {
		ri.errCode = e.code
		ri.quota, _ = e.extra["quota"].(string)
	}
	id := requestID(r)
	msg := e.message
	if e.isFault() {
		level := slog.LevelError
		if e.status != http.StatusInternalServerError {
			level = slog.LevelWarn // busy, a full disk: the server's state, not a bug
		}
		logFailure(r, level, e, err)
		m, ok := faultMessage[e.code]
		if !ok {
			m = faultMessage["internal"]
		}
		msg = m + "; see the server log for request " + id
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("ETag")
	if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests || e.retry > 0 {
		secs := retryAfter
		if e.retry > 0 {
			secs = int((e.retry + time.Second - 1) / time.Second)
		}
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	w.WriteHeader(e.status)
	b := []byte(`{"error":{"code":`)
	b = jsonx.AppendString(b, e.code)
	b = append(b, `,"message":`...)
	b = jsonx.AppendString(b, msg)
	b = append(b, `,"request_id":`...)
	b = jsonx.AppendString(b, id)
	for _, k := range sortedKeys(e.extra) {
		b = append(b, ',')
		b = jsonx.AppendString(b, k)
		b = append(b, ':')
		b = appendAny(b, e.extra[k])
	}
	b = append(b, "}}\n"...)
	w.Write(b)
}

// contentError is the answer for an error status that http.ServeContent
// chose, with the text it meant to send (for the log only).
func contentError(status int, text string) error {
	switch status {
	case http.StatusPreconditionFailed:
		return errorf("precondition_failed", "the If-Match or If-Unmodified-Since condition does not hold")
	case http.StatusRequestedRangeNotSatisfiable:
		return errorf("range_not_satisfiable", "the Range asks for bytes the blob does not have (its size is in Content-Range)")
	}
	return fmt.Errorf("serving content: %d %s", status, strings.TrimSpace(text))
}

// contentWriter makes the error answers of http.ServeContent (plain text,
// with whatever an error said) JSON error answers like all the others.
// Call finish after ServeContent.
type contentWriter struct {
	http.ResponseWriter
	r      *http.Request
	failed int // the error status ServeContent chose
	text   []byte
}

func (w *contentWriter) WriteHeader(code int) {
	if code >= 400 {
		w.failed = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *contentWriter) Write(b []byte) (int, error) {
	if w.failed != 0 {
		w.text = append(w.text, b...)
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's sendfile for large blobs.
func (w *contentWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.failed != 0 {
		return io.Copy(io.Discard, src)
	}
	return io.Copy(w.ResponseWriter, src)
}

func (w *contentWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish sends the error answer, if ServeContent chose one.
func (w *contentWriter) finish() {
	if w.failed != 0 {
		writeError(w.ResponseWriter, w.r, contentError(w.failed, string(w.text)))
	}
}
