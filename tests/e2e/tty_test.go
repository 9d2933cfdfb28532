package e2e_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ptyOutput is what a program wrote to its terminal, read from the
// pseudo-terminal's master side.
type ptyOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *ptyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// onTerminal starts the real binary with a pseudo-terminal as its standard
// input, output and error (its controlling terminal, as over SSH), and
// returns the master side to type into, what the program writes there, and
// its exit code once it is done.
func onTerminal(t *testing.T, args ...string) (*os.File, *ptyOutput, func() int) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	out := &ptyOutput{}
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out.mu.Lock()
			out.b.Write(buf[:n])
			out.mu.Unlock()
			if err != nil {
				return // EIO once the program has closed its side
			}
		}
	}()
	return master, out, func() int {
		// The bound only keeps a program still waiting for input (a prompt
		// the test did not expect) from hanging the test.
		stop := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
		defer stop.Stop()
		cmd.Wait()
		<-read
		return cmd.ProcessState.ExitCode()
	}
}

// typeAt waits for the program to ask (prompt) and then types line. The
// bound only keeps a program that never asks from hanging the test.
func typeAt(t *testing.T, master *os.File, out *ptyOutput, prompt, line string, seen int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); strings.Count(out.String(), prompt) < seen; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("never asked %q; the terminal shows:\n%s", prompt, out)
		}
	}
	if _, err := master.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

// TestPasswordPrompt: on a terminal, user add asks for the password twice
// without showing it, refuses two that differ and a short one (before
// asking again), and stores nothing then.
func TestPasswordPrompt(t *testing.T) {
	data := t.TempDir()
	strataCLI(t, data, "", "tenant", "create", "shop")
	const pw = "terminal-pw-1"
	for _, tc := range []struct {
		name   string
		typed  []string
		code   int
		says   string
		stored bool
	}{
		{"carol", []string{pw, pw}, 0, "add carol", true},
		{"dave", []string{pw, pw + "x"}, 2, "the two passwords differ", false},
		{"erin", []string{"short"}, 2, "at least 8 characters", false},
	} {
		master, out, wait := onTerminal(t, "user", "add", tc.name, "--tenant", "shop", "--role", "reader", "--data", data)
		typeAt(t, master, out, "password for "+tc.name+": ", tc.typed[0], 1)
		if len(tc.typed) > 1 {
			typeAt(t, master, out, "again: ", tc.typed[1], 1)
		}
		code := wait()
		shown := out.String()
		if code != tc.code || !strings.Contains(shown, tc.says) {
			t.Errorf("%s: exit %d, want %d saying %q; the terminal shows:\n%s", tc.name, code, tc.code, tc.says, shown)
		}
		for _, p := range tc.typed {
			if strings.Contains(shown, p) {
				t.Errorf("%s: the password %q was shown on the terminal:\n%s", tc.name, p, shown)
			}
		}
		if len(tc.typed) == 1 && strings.Contains(shown, "again") {
			t.Errorf("%s: a short password was asked for again:\n%s", tc.name, shown)
		}
		listed := strings.Contains(strataCLI(t, data, "", "user", "list"), tc.name)
		if listed != tc.stored {
			t.Errorf("%s: in user list %v, want %v", tc.name, listed, tc.stored)
		}
	}
}
