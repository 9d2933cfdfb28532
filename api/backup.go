package api

import (
	"archive/tar"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"strata/backup"
)

// adminBackup serves GET /admin/backup[?since=<id>]: a backup of the whole
// data directory, as `strata backup` makes it, streamed as a tar of
// <id>/manifest.json and <id>/files/… (backup/FORMAT.md), so a host
// without a shell can be backed up by a cron job elsewhere: extract the
// tar into a backup directory and `strata restore` reads it. The backup is
// written under system/backups first (the files are removed once sent;
// the manifest stays so that since=<id> knows what that backup held).
func (h *Handler) adminBackup(w http.ResponseWriter, r *http.Request, c *call) {
	q := r.URL.Query()
	if err := checkParams(q, "since"); err != nil {
		writeError(w, r, err)
		return
	}
	since := q.Get("since")
	dir := filepath.Join(h.cfg.DataDir, filepath.FromSlash(backup.ServedDir))
	if since != "" {
		if !backup.ValidID(since) {
			writeError(w, r, badParam("since", "not a backup id"))
			return
		}
		if _, err := backup.ReadManifest(dir, since); err != nil {
			writeError(w, r, errorf("not_found", "no backup %s was served here", since))
			return
		}
	}
	m, err := backup.Create(h.cfg.DataDir, dir, backup.Options{Parent: since})
	if err != nil {
		writeError(w, r, err)
		return
	}
	bdir := filepath.Join(dir, m.ID)
	// Only the manifest is kept: the files are the client's now, sent or not
	// (a client that lost them asks again with an older since).
	defer os.RemoveAll(filepath.Join(bdir, "files"))
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="strata-backup-`+m.ID+`.tar"`)
	w.Header().Set("Strata-Backup", m.ID)
	w.WriteHeader(http.StatusOK)
	tw := tar.NewWriter(w)
	names := []string{"manifest.json"}
	for _, f := range m.Files {
		names = append(names, f.Stored)
	}
	err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: m.ID + "/", Mode: 0o700})
	if err == nil {
		err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: m.ID + "/files/", Mode: 0o700})
	}
	for _, name := range names {
		if err == nil {
			err = tarFile(tw, bdir, m.ID, name)
		}
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		logCut(r, err)
	}
}

// tarFile adds bdir/name to tw as id/name.
func tarFile(tw *tar.Writer, bdir, id, name string) error {
	f, err := os.Open(filepath.Join(bdir, filepath.FromSlash(name)))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: id + "/" + name, Mode: 0o600, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	if err == nil && n != fi.Size() {
		err = errors.New("a backup file changed size while sent")
	}
	return err
}
