package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/rotator"
)

// assertWholeLines fails unless every line of the file is a complete JSON
// record and the file ends with a newline.
func assertWholeLines(t *testing.T, b []byte) int {
	t.Helper()
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("the audit file ends in a torn line: %q", b[max(0, len(b)-80):])
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Version != SchemaVersion {
			t.Fatalf("line %d is not a whole record: %q", n+1, sc.Text())
		}
		n++
	}
	return n
}

// TestFileSizeLimitNeverTearsALine runs a child process under a file size
// limit (RLIMIT_FSIZE): the kernel writes part of the line that crosses
// the limit and fails the rest, as a full disk does. Record reports the
// failure and the file holds only whole lines.
func TestFileSizeLimitNeverTearsALine(t *testing.T) {
	if dir := os.Getenv("REKEY_AUDIT_FSIZE_CHILD"); dir != "" {
		fsizeChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileSizeLimitNeverTearsALine$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REKEY_AUDIT_FSIZE_CHILD="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	res, err := os.ReadFile(filepath.Join(dir, "result"))
	if err != nil {
		t.Fatalf("child wrote no result: %v\n%s", err, out)
	}
	var r struct{ OK, Failed int }
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "audit.log"))
	whole := assertWholeLines(t, b)
	if r.Failed == 0 || r.OK == 0 || whole != r.OK {
		t.Fatalf("records ok %d, failed %d, lines in the file %d", r.OK, r.Failed, whole)
	}
}

// fsizeChild writes records under a 4000-byte file size limit until ten
// have failed, and reports the counts.
func fsizeChild(dir string) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		panic(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 4000, Max: lim.Max}); err != nil {
		panic(err)
	}
	l, err := Open(filepath.Join(dir, "audit.log"))
	if err != nil {
		panic(err)
	}
	ok, failed := 0, 0
	for i := 0; failed < 10; i++ {
		err := l.Record(context.Background(), rotator.Event{Time: time.Now(), Policy: "p" + strconv.Itoa(i), RotationID: "r", Step: rotator.StepCommit, Result: rotator.ResultOK})
		if err == nil {
			ok++
		} else {
			failed++
		}
	}
	l.Close()
	b, _ := json.Marshal(map[string]int{"OK": ok, "Failed": failed})
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		panic(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "result"), b, 0o600)
}

// shortFile is an appendFile whose writes succeed partly and then fail,
// keeping a ledger of what reached the "disk".
type shortFile struct {
	data      []byte
	failAfter int // whole writes that succeed
	writes    int
	truncs    int
}

func (f *shortFile) Write(p []byte) (int, error) {
	f.writes++
	if f.writes > f.failAfter {
		half := len(p) / 2
		f.data = append(f.data, p[:half]...)
		return half, syscall.ENOSPC
	}
	f.data = append(f.data, p...)
	return len(p), nil
}
func (f *shortFile) Stat() (os.FileInfo, error) { return sizeInfo(len(f.data)), nil }
func (f *shortFile) Truncate(n int64) error     { f.truncs++; f.data = f.data[:n]; return nil }
func (f *shortFile) Sync() error                { return nil }
func (f *shortFile) Close() error               { return nil }

type sizeInfo int

func (s sizeInfo) Name() string       { return "audit.log" }
func (s sizeInfo) Size() int64        { return int64(s) }
func (s sizeInfo) Mode() os.FileMode  { return 0o600 }
func (s sizeInfo) ModTime() time.Time { return time.Time{} }
func (s sizeInfo) IsDir() bool        { return false }
func (s sizeInfo) Sys() any           { return nil }

func TestShortWriteIsCutBackAndReported(t *testing.T) {
	f := &shortFile{failAfter: 2}
	var reported []error
	l := &Log{path: "audit.log", host: "h", f: f, OnError: func(err error) { reported = append(reported, err) }}
	ev := rotator.Event{Policy: "p", RotationID: "r", Step: rotator.StepRevoke, Result: rotator.ResultOK}
	for i := range 2 {
		if err := l.Record(context.Background(), ev); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	err := l.Record(context.Background(), ev)
	if !errors.Is(err, syscall.ENOSPC) || len(reported) != 1 || f.truncs != 1 {
		t.Fatalf("err %v, reported %v, truncations %d", err, reported, f.truncs)
	}
	if n := assertWholeLines(t, f.data); n != 2 {
		t.Fatalf("%d lines", n)
	}
}
