package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"strata/blobs"
	"strata/jsonx"
	"strata/log"
	"strata/query"
	"strata/quota"
)

// apiError is an error with its HTTP answer.
type apiError struct {
	status  int
	code    string
	message string
	// extra members of the error object, such as the current value after a
	// conflict.
	extra map[string]any
	// retry is the Retry-After of a 429 or 503 (1 s when zero).
	retry time.Duration
}

func (e *apiError) Error() string { return e.message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// retryAfter is the Retry-After sent with 503 answers, in seconds.
const retryAfter = 1

// classify maps any error to its answer: the one table of error → status.
func classify(err error) *apiError {
	var ae *apiError
	var fe *jsonx.FieldError
	var ie *log.InvalidError
	var vc *log.VersionConflictError
	var hc *log.HeadConflictError
	var kc *log.KeyConflictError
	var qe *quota.ExceededError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &qe):
		return quotaError(qe)
	case errors.As(err, &fe):
		e := errorf(http.StatusBadRequest, "invalid_event", "%s", fe.Error())
		e.extra = map[string]any{"index": fe.Index, "field": fe.Field}
		return e
	case errors.As(err, &ie):
		code := "invalid_event"
		status := http.StatusBadRequest
		if errors.Is(ie.Err, log.ErrTooLarge) {
			status, code = http.StatusRequestEntityTooLarge, "event_too_large"
		}
		e := errorf(status, code, "%s", ie.Error())
		e.extra = map[string]any{"index": ie.Index, "field": ie.Field}
		return e
	case errors.As(err, &vc):
		e := errorf(http.StatusConflict, "version_conflict", "%s", vc.Error())
		e.extra = map[string]any{"index": vc.Index, "entity": vc.Entity, "expected_version": vc.Expected, "current_version": vc.Current}
		return e
	case errors.As(err, &hc):
		e := errorf(http.StatusConflict, "head_conflict", "the log's head is %x (seq %d), not the If-Match head %x: someone appended since you last synced", hc.Current.ID, hc.Current.Seq, hc.Expected)
		e.extra = map[string]any{"current_head": headJSON(hc.Current)}
		return e
	case errors.As(err, &kc):
		e := errorf(http.StatusConflict, "key_conflict", "%s", kc.Error())
		e.extra = map[string]any{"index": kc.Index, "key": kc.Key, "existing_id": kc.Existing.IDString(), "existing_seq": kc.Existing.Seq}
		return e
	case errors.Is(err, query.ErrFromNotFound):
		return errorf(http.StatusNotFound, "not_on_chain", "the from id is not on this chain: the client's history has diverged from the server's, or the id is wrong")
	case errors.Is(err, query.ErrToNotFound):
		return errorf(http.StatusNotFound, "not_on_chain", "the to id is not on this chain")
	case errors.Is(err, log.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "no such event")
	case errors.Is(err, log.ErrLockTimeout), errors.Is(err, blobs.ErrLockTimeout):
		return errorf(http.StatusServiceUnavailable, "busy", "the log is busy with other writers; retry")
	case errors.Is(err, log.ErrNoSpace), errors.Is(err, blobs.ErrNoSpace):
		return errorf(http.StatusInsufficientStorage, "disk_full", "no space left on the server's disk; nothing was stored")
	case errors.Is(err, log.ErrFailed):
		return errorf(http.StatusServiceUnavailable, "log_failed", "a write to this log failed; it refuses appends until reopened")
	case errors.Is(err, log.ErrCorrupt):
		return errorf(http.StatusInternalServerError, "corrupt", "%s", err.Error())
	case errors.Is(err, blobs.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "no such blob")
	case errors.Is(err, blobs.ErrInvalidHash):
		return errorf(http.StatusBadRequest, "invalid_hash", "a blob hash is 64 lowercase hex digits (BLAKE3-256)")
	case errors.Is(err, blobs.ErrHashMismatch):
		return errorf(http.StatusBadRequest, "hash_mismatch", "the content does not hash to the hash in the path; nothing was stored")
	case errors.Is(err, blobs.ErrTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "blob_too_large", "the blob is over this server's size limit; nothing was stored")
	}
	return errorf(http.StatusInternalServerError, "internal", "%s", err.Error())
}

// writeError sends err as a JSON error answer.
func writeError(w http.ResponseWriter, err error) {
	e := classify(err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("ETag")
	if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests {
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
	b = jsonx.AppendString(b, e.message)
	for _, k := range sortedKeys(e.extra) {
		b = append(b, ',')
		b = jsonx.AppendString(b, k)
		b = append(b, ':')
		b = appendAny(b, e.extra[k])
	}
	b = append(b, "}}\n"...)
	w.Write(b)
}
