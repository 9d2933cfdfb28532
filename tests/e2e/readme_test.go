package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEExamples pastes README's "Using it" examples into bash, from
// the top of the repository as README says, against a server started as
// `make run` starts it: every command must run (the example files exist,
// the ids it picks up are there) and no answer may be an error but the one
// README announces (the second If-Match append).
func TestREADMEExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i := strings.Index(s, "With `make run` going")
	if i < 0 {
		t.Fatal("README has no \"With `make run` going\" examples")
	}
	start := strings.Index(s[i:], "```sh\n")
	end := strings.Index(s[i+start+6:], "```\n")
	if start < 0 || end < 0 {
		t.Fatal("README's examples are not in a ```sh block")
	}
	block := s[i+start+6 : i+start+6+end]

	srv := startServer(t, "") // --auth=none, as make run
	script := "set -euo pipefail\n" + strings.ReplaceAll(block, "http://127.0.0.1:8080", srv.url)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = root
	cmd.Env = append(cleanEnv(), "CURL_HOME=/nonexistent")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README's examples failed in bash: %v\n%s", err, out)
	}
	codes := regexp.MustCompile(`"error":\{"code":"([a-z_]+)"`).FindAllStringSubmatch(string(out), -1)
	if len(codes) != 1 || codes[0][1] != "head_conflict" {
		t.Errorf("errors answered to README's examples: %v, want only the announced head_conflict\n%s", codes, out)
	}
	if n := len(readAll(t, srv.url)); n != 13 {
		t.Errorf("%d events after README's examples, want 13", n)
	}
}
