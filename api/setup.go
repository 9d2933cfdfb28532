package api

import (
	"crypto/subtle"
	"fmt"
	"net/http"

	"strata/auth"
)

// minSetupKey is the shortest setup key accepted: it stands in for an
// administrator's credentials until the first one exists.
const minSetupKey = 16

// setup serves POST /setup: on a host without a shell, where the CLI
// cannot run, the operator puts a setup key in strata.conf
// (STRATA_SETUP_KEY) and exchanges it once for the first administrator's
// token. It answers only while the installation has no administrator at
// all; afterwards the key is useless and should be removed. Wrong keys
// count as failed logins of the client's address.
func (h *Handler) setup(w http.ResponseWriter, r *http.Request, c *call) {
	if h.cfg.SetupKey == "" || h.cfg.NoAuth {
		writeError(w, r, errorf("setup_off", "setup is off: set STRATA_SETUP_KEY (at least %d characters) in strata.conf to create the first administrator's token here, or use the CLI", minSetupKey))
		return
	}
	th, err := h.acc.getThrottle()
	if err != nil {
		writeError(w, r, fmt.Errorf("%w: %v", auth.ErrThrottle, err))
		return
	}
	var in struct {
		Key string `json:"key"`
	}
	if err := readJSON(r, &in); err != nil {
		writeError(w, r, err)
		return
	}
	// Counted before the key is compared, and taken back if it is right,
	// as a password is (Handler.password).
	now := timeNow()
	wait, err := th.Reserve(now, "addr:"+c.addr)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if wait > 0 {
		writeError(w, r, authError(wait, ""))
		return
	}
	if len(h.cfg.SetupKey) < minSetupKey || subtle.ConstantTimeCompare([]byte(in.Key), []byte(h.cfg.SetupKey)) != 1 {
		e := errorf("unauthorized", "the setup key is not right (it must be at least %d characters)", minSetupKey)
		h.recordAs(c.ri, "setup", c.addr, "auth.refused", "", e.status, map[string]any{"reason": "wrong setup key", "path": "/setup"})
		writeError(w, r, e)
		return
	}
	if err := th.Release(now, "addr:"+c.addr); err != nil {
		c.ri.logger(h).Warn("setup: the address's reserved attempt not taken back", "err", err.Error())
	}
	c.who = auth.Principal{Kind: "setup", Name: "setup"}
	s, err := h.service(c)
	if err != nil {
		writeError(w, r, err)
		return
	}
	has, err := s.HasAdmin()
	if err != nil {
		writeError(w, r, err)
		return
	}
	if has {
		writeError(w, r, errorf("already_set_up", "this installation has an administrator already; remove STRATA_SETUP_KEY from its configuration"))
		return
	}
	secret, t, err := s.CreateToken("", auth.RoleAdmin, "setup", 0)
	writeNewToken(w, r, secret, t, err)
}
