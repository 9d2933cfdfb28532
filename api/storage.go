package api

import (
	"encoding/json"
	"mime"
	"net/http"
	"path"
	"strings"

	"strata/blobs"
)

// storagePut serves PUT /storage/: store the body, answer its hash.
func (h *Handler) storagePut(w http.ResponseWriter, r *http.Request, t *tenant) {
	h.putBlob(w, r, t, "")
}

// storage serves /storage/<hash>, and PUT /storage/<file name>, which is
// what `curl -T report.pdf …/storage/` sends: the name only hints at the
// content type and never touches the file system.
func (h *Handler) storage(w http.ResponseWriter, r *http.Request, t *tenant) {
	store, err := t.store()
	if err != nil {
		writeError(w, err)
		return
	}
	hash := strings.TrimPrefix(r.URL.Path, "/storage/")
	if !blobs.ValidHash(hash) {
		if r.Method == http.MethodPut && !looksLikeHash(hash) && !strings.Contains(hash, "/") {
			if r.Header.Get("Content-Type") == "" {
				if t := mime.TypeByExtension(path.Ext(hash)); t != "" {
					r.Header.Set("Content-Type", t)
				}
			}
			h.putBlob(w, r, t, "")
			return
		}
		writeError(w, blobs.ErrInvalidHash)
		return
	}
	switch r.Method {
	case http.MethodPut:
		h.putBlob(w, r, t, hash)
	case http.MethodDelete:
		if err := store.Delete(hash); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		f, info, err := store.Open(hash)
		if err != nil {
			writeError(w, err)
			return
		}
		defer f.Close()
		hd := w.Header()
		hd.Set("Content-Type", info.Type)
		hd.Set("ETag", `"`+hash+`"`)
		// The address is the content: it can never change.
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeContent(w, r, "", info.ModTime, f)
	}
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

func (h *Handler) putBlob(w http.ResponseWriter, r *http.Request, t *tenant, want string) {
	if r.ContentLength <= 0 && r.Header.Get("Content-Length") == "" && len(r.TransferEncoding) == 0 {
		writeError(w, errorf(http.StatusLengthRequired, "length_required", "send a Content-Length or a chunked body"))
		return
	}
	if h.cfg.MaxBlob > 0 && r.ContentLength > h.cfg.MaxBlob {
		writeError(w, blobs.ErrTooLarge)
		return
	}
	store, err := t.store()
	if err != nil {
		writeError(w, err)
		return
	}
	info, created, err := store.Put(r.Body, want, r.Header.Get("Content-Type"))
	if err != nil {
		writeError(w, err)
		return
	}
	body, _ := json.Marshal(struct {
		Hash string `json:"hash"`
		Size int64  `json:"size"`
		Type string `json:"type"`
	}{info.Hash, info.Size, info.Type})
	w.Header().Set("ETag", `"`+info.Hash+`"`)
	w.Header().Set("Location", info.Hash) // relative: /storage/<hash> wherever mounted
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, body)
}
