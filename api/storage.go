package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"path"

	"strata/blobs"
	"strata/quota"
)

// storagePut serves PUT /storage/: store the body, answer its hash.
func (h *Handler) storagePut(w http.ResponseWriter, r *http.Request, c *call) {
	h.putBlob(w, r, c, "")
}

// blobPut serves PUT /storage/<hash>, and PUT /storage/<file name>, which
// is what `curl -T report.pdf …/storage/` sends: the name only hints at the
// content type and never touches the file system.
func (h *Handler) blobPut(w http.ResponseWriter, r *http.Request, c *call) {
	name := c.arg
	if blobs.ValidHash(name) {
		h.putBlob(w, r, c, name)
		return
	}
	if looksLikeHash(name) {
		writeError(w, r, blobs.ErrInvalidHash)
		return
	}
	if r.Header.Get("Content-Type") == "" {
		if t := mime.TypeByExtension(path.Ext(name)); t != "" {
			r.Header.Set("Content-Type", t)
		}
	}
	h.putBlob(w, r, c, "")
}

// blobGet serves GET and HEAD /storage/<hash>, with ranges and ETags.
func (h *Handler) blobGet(w http.ResponseWriter, r *http.Request, c *call) {
	store, hash, ok := blobOf(w, r, c)
	if !ok {
		return
	}
	f, info, err := store.Open(hash)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer f.Close()
	hd := w.Header()
	hd.Set("Content-Type", info.Type)
	hd.Set("ETag", `"`+hash+`"`)
	// The address is the content: it can never change. Private: with
	// accounts, a shared cache must not hand it to others.
	hd.Set("Cache-Control", "private, max-age=31536000, immutable")
	cw := &contentWriter{ResponseWriter: w, r: r}
	http.ServeContent(cw, r, "", info.ModTime, f)
	cw.finish()
}

// blobDelete serves DELETE /storage/<hash>.
func (h *Handler) blobDelete(w http.ResponseWriter, r *http.Request, c *call) {
	store, hash, ok := blobOf(w, r, c)
	if !ok {
		return
	}
	if err := store.Delete(hash); err != nil {
		writeError(w, r, err)
		return
	}
	h.recordMutation(c, "blob.delete", http.StatusNoContent, map[string]any{"hash": hash})
	w.WriteHeader(http.StatusNoContent)
}

// blobOf checks the hash a /storage/<hash> route names and opens the
// tenant's store; it answers the error itself when either fails.
func blobOf(w http.ResponseWriter, r *http.Request, c *call) (*blobs.Store, string, bool) {
	if !blobs.ValidHash(c.arg) {
		writeError(w, r, blobs.ErrInvalidHash)
		return nil, "", false
	}
	store, err := c.t.store()
	if err != nil {
		writeError(w, r, err)
		return nil, "", false
	}
	return store, c.arg, true
}

// looksLikeHash: 64 hex digits in any case — meant as a hash, so a wrong
// one is an error rather than a file name.
func looksLikeHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// putBlob stores the body as a blob, within the server's and the tenant's
// limits: the largest blob, and the tenant's storage, checked under the
// blob store's usage lock together with the log's size.
func (h *Handler) putBlob(w http.ResponseWriter, r *http.Request, c *call, want string) {
	if r.ContentLength <= 0 && r.Header.Get("Content-Length") == "" && len(r.TransferEncoding) == 0 {
		writeError(w, r, errorf("length_required", "send a Content-Length or a chunked body"))
		return
	}
	info, created, err := h.storeBlob(c, clientBody{r.Body}, r.ContentLength, r.Header.Get("Content-Type"), want)
	if err != nil {
		writeError(w, r, err)
		return
	}
	body, _ := json.Marshal(struct {
		Hash string `json:"hash"`
		Size int64  `json:"size"`
		Type string `json:"type"`
	}{info.Hash, info.Size, info.Type})
	w.Header().Set("ETag", `"`+info.Hash+`"`)
	// The blob's address, relative: /storage/<hash> wherever mounted. As
	// Location only with 201: Apache turns a CGI answer with Location and
	// status 200 into its own 302 page, so a re-upload (200) names it in
	// Content-Location and answers the same in every mode.
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", info.Hash)
		h.recordMutation(c, "blob.put", status, map[string]any{"hash": info.Hash, "size": info.Size})
	} else {
		w.Header().Set("Content-Location", info.Hash)
	}
	writeJSON(w, status, body)
}

// storeBlob stores body (size bytes, -1 when unknown) as a blob of the
// call's tenant, of content type ctype, within the server's and the
// tenant's limits: the largest blob, and the tenant's storage, checked
// under the blob store's usage lock together with the log's size. want is
// "" or the hash the content must have. It is PUT /storage's, and a
// CloudEvent's non-JSON data's (cloudevents_in.go).
func (h *Handler) storeBlob(c *call, body io.Reader, size int64, ctype, want string) (blobs.Info, bool, error) {
	lim := c.cfg.Limits()
	if h.cfg.NoAuth {
		lim = quota.Limits{}
	}
	if err := lim.CheckBlob(size); err != nil {
		return blobs.Info{}, false, err
	}
	if h.cfg.MaxBlob > 0 && size > h.cfg.MaxBlob {
		return blobs.Info{}, false, &blobs.TooLargeError{Limit: h.cfg.MaxBlob}
	}
	store, err := c.t.store()
	if err != nil {
		return blobs.Info{}, false, err
	}
	opts := blobs.PutOptions{Want: want, ContentType: ctype, MaxSize: lim.BlobLimit(h.cfg.MaxBlob)}
	if lim.StorageBytes > 0 {
		opts.Admit = func(size int64, u blobs.Usage) error {
			logBytes, err := c.t.log.Bytes()
			if err != nil {
				return err
			}
			return lim.CheckStorage(logBytes+u.Bytes, size)
		}
	}
	info, created, err := store.PutWith(body, opts)
	if err != nil {
		var te *blobs.TooLargeError
		if errors.As(err, &te) {
			if qe := lim.OverBlobLimit(te.Limit); qe != nil {
				err = qe // the tenant's quota, not the server's --max-blob
			}
		}
		return blobs.Info{}, false, err
	}
	return info, created, nil
}

// clientBody marks a failure to read the request body as the client's
// (400 body_unreadable: it went away, or sent less than its length), so
// that it is not taken for the store's failure and answered 500.
type clientBody struct{ io.Reader }

func (b clientBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err != nil && err != io.EOF {
		err = bodyError(err)
	}
	return n, err
}
