// Command bench measures rekey at scale against a floor: a bare Go program
// making the same external calls (the same key write with fsync and
// rename, the same probe command). It generates N policies (random
// provider, file sink, exec probe /bin/true, no grace), runs rekey and the
// floor interleaved, several repetitions, and prints min/median/max and
// the ratio of medians. See README.md.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		if err := floor(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench floor:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "gen" {
		fs := flag.NewFlagSet("gen", flag.ExitOnError)
		n := fs.Int("n", 1000, "policies")
		dir := fs.String("dir", "", "directory")
		closed := fs.Bool("closed", false, "window closed now")
		_ = fs.Parse(os.Args[2:])
		if err := genPolicies(*dir, *n, *closed, false); err != nil {
			fmt.Fprintln(os.Stderr, "bench gen:", err)
			os.Exit(1)
		}
		return
	}
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	rekey := fs.String("rekey", "", "rekey binary (default: built from ./cmd/rekey into the work directory)")
	reps := fs.Int("reps", 5, "repetitions of each measurement")
	rows := fs.String("rows", "wait,fsync,all,daemonall,idle,validate", "rows to measure (comma-separated): wait, fsync, all, daemonall, idle, validate")
	allN := fs.Int("all-n", 1000, "policies for rotate -all")
	idleN := fs.Int("idle-n", 10000, "policies for the idle daemon")
	idleFor := fs.Duration("idle-for", 10*time.Second, "idle CPU sampling period")
	validateN := fs.String("validate-n", "10000,100000", "policy counts for validate")
	noMlock := fs.Bool("no-mlock", false, "write disable_mlock = true")
	keep := fs.Bool("keep", false, "keep the work directory")
	_ = fs.Parse(os.Args[1:])

	work, err := os.MkdirTemp("", "rekey-bench-")
	check(err)
	if !*keep {
		defer os.RemoveAll(work)
	}
	self, err := os.Executable()
	check(err)
	if *rekey == "" {
		*rekey = filepath.Join(work, "rekey")
		cmd := exec.Command("go", "build", "-o", *rekey, "./cmd/rekey")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		check(cmd.Run())
	}
	b := &bench{rekey: *rekey, self: self, work: work, reps: *reps, noMlock: *noMlock}
	fmt.Printf("# rekey bench, %s, %s\n", time.Now().UTC().Format(time.RFC3339), loadavg())
	fmt.Println("| what | rekey min / median / max | floor min / median / max | ratio of medians |")
	fmt.Println("|---|---|---|---|")
	for _, r := range strings.Split(*rows, ",") {
		switch strings.TrimSpace(r) {
		case "wait":
			b.rowWait()
		case "fsync":
			b.rowFsync()
		case "all":
			b.rowAll(*allN, false)
		case "daemonall":
			b.rowAll(*allN, true)
		case "idle":
			b.rowIdle(*idleN, *idleFor)
		case "validate":
			for _, s := range strings.Split(*validateN, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				check(err)
				b.rowValidate(n)
			}
		case "":
		default:
			check(fmt.Errorf("unknown row %q", r))
		}
	}
	fmt.Printf("# done, %s\n", loadavg())
}

type bench struct {
	rekey, self, work string
	reps              int
	noMlock           bool
	seq               int
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	return "load average " + strings.Join(f[:3], " ")
}

// dir makes a fresh directory holding n generated policies.
func (b *bench) dir(n int, closed bool) string {
	b.seq++
	d := filepath.Join(b.work, fmt.Sprintf("cfg%02d-%d", b.seq, n))
	check(genPolicies(d, n, closed, b.noMlock))
	return d
}

// genPolicies writes n policies into dir, 100 per file: random provider,
// file sink, exec probe /bin/true, no grace (revoke at once). With closed,
// their window is closed now, so that a daemon starts no rotation itself.
func genPolicies(dir string, n int, closed, noMlock bool) error {
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o700); err != nil {
		return err
	}
	window := "Mon-Sun 00:00-23:59 UTC"
	if closed {
		h := (time.Now().UTC().Hour() + 12) % 24
		window = fmt.Sprintf("Mon-Sun %02d:00-%02d:30 UTC", h, h)
	}
	var sb strings.Builder
	sb.WriteString("state_dir = \"state\"\n")
	if noMlock {
		sb.WriteString("disable_mlock = true\n")
	}
	file := 0
	flush := func() error {
		if sb.Len() == 0 {
			return nil
		}
		err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%06d.hcl", file)), []byte(sb.String()), 0o644)
		file++
		sb.Reset()
		return err
	}
	for i := range n {
		fmt.Fprintf(&sb, `policy "p%06d" {
  every  = "30d"
  window = %q
  provider "random" {}
  sink "file" {
    path   = "out/p%06d.key"
    format = "raw"
  }
  probe "exec" {
    command = ["/bin/true"]
  }
  revoke {
    after = "0s"
  }
}
`, i, window, i)
		if (i+1)%100 == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// floor does what a rotation of n policies needs, and nothing else: a new
// random key written beside each policy's key file, fsynced, renamed over
// it, the directory fsynced, then the probe command run.
func floor(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	n := fs.Int("n", 1, "policies")
	dir := fs.String("dir", ".", "directory of the key files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for i := range *n {
		var k [32]byte
		_, _ = rand.Read(k[:])
		path := filepath.Join(*dir, fmt.Sprintf("p%06d.key", i))
		f, err := os.CreateTemp(*dir, ".floor-*")
		if err != nil {
			return err
		}
		if _, err := f.WriteString(hex.EncodeToString(k[:])); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(f.Name(), path); err != nil {
			return err
		}
		d, err := os.Open(*dir)
		if err != nil {
			return err
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
		if err := exec.Command("/bin/true").Run(); err != nil {
			return err
		}
	}
	return nil
}

// result is one timed run of a process.
type result struct {
	wall   time.Duration
	cpu    time.Duration
	maxRSS int64 // KiB
	out    string
}

func run(name string, env []string, args ...string) (result, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	r := result{wall: time.Since(t0), out: out.String()}
	if cmd.ProcessState != nil {
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss
		}
	}
	if err != nil {
		return r, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, tail(r.out))
	}
	return r, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

func (b *bench) floorRun(n int, dir string) result {
	r, err := run(b.self, nil, "floor", "-n", strconv.Itoa(n), "-dir", filepath.Join(dir, "out"))
	check(err)
	return r
}

type series []time.Duration

func (s series) String() string {
	if len(s) == 0 {
		return "–"
	}
	c := slices.Clone(s)
	slices.Sort(c)
	return fmt.Sprintf("%s / %s / %s", fmtDur(c[0]), fmtDur(c[len(c)/2]), fmtDur(c[len(c)-1]))
}

func (s series) median() time.Duration {
	c := slices.Clone(s)
	slices.Sort(c)
	return c[len(c)/2]
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
}

func row(what string, rk, fl series) {
	ratio := "–"
	if len(rk) > 0 && len(fl) > 0 {
		ratio = fmt.Sprintf("%.2f×", float64(rk.median())/float64(fl.median()))
	}
	fmt.Printf("| %s | %s | %s | %s |\n", what, rk, fl, ratio)
}

// daemon is a running `rekey run`.
type daemon struct {
	cmd *exec.Cmd
	log *os.File
}

func (b *bench) startDaemon(dir string) *daemon {
	lf, err := os.Create(filepath.Join(dir, "daemon.log"))
	check(err)
	cmd := exec.Command(b.rekey, "run", "-config", dir)
	cmd.Stdout, cmd.Stderr = lf, lf
	check(cmd.Start())
	d := &daemon{cmd: cmd, log: lf}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if _, err := run(b.rekey, nil, "status", "-config", dir); err == nil {
			r, _ := run(b.rekey, nil, "status", "-config", dir)
			if !strings.Contains(r.out, "not running") {
				return d
			}
		}
		if time.Now().After(deadline) {
			d.stop()
			check(errors.New("daemon did not answer within 5 minutes; see " + lf.Name()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	d.log.Close()
}

func (b *bench) rowWait() {
	dir := b.dir(1, true)
	// First rotation outside the measurement: it creates the journal.
	_, err := run(b.rekey, nil, "rotate", "-wait", "-config", dir, "p000000")
	check(err)
	var cold, viaDaemon, fl series
	for range b.reps {
		r, err := run(b.rekey, nil, "rotate", "-wait", "-config", dir, "p000000")
		check(err)
		cold = append(cold, r.wall)
		fl = append(fl, b.floorRun(1, dir).wall)
	}
	d := b.startDaemon(dir)
	var fl2 series
	for range b.reps {
		r, err := run(b.rekey, nil, "rotate", "-wait", "-config", dir, "p000000")
		check(err)
		viaDaemon = append(viaDaemon, r.wall)
		fl2 = append(fl2, b.floorRun(1, dir).wall)
	}
	d.stop()
	row("one `rotate -wait`, through the daemon", viaDaemon, fl2)
	row("one `rotate -wait`, cold CLI (no daemon)", cold, fl)
}

var straceLine = regexp.MustCompile(`^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$`)

// rowFsync counts fsync and fdatasync calls of one cold `rotate -wait`
// with strace; bbolt makes two fdatasync per journal transaction.
func (b *bench) rowFsync() {
	if _, err := exec.LookPath("strace"); err != nil {
		fmt.Println("| fsyncs per rotation | strace not found | | |")
		return
	}
	dir := b.dir(1, true)
	_, err := run(b.rekey, nil, "rotate", "-wait", "-config", dir, "p000000")
	check(err)
	count := func(name string, args ...string) map[string]int {
		out := filepath.Join(b.work, "strace.txt")
		_, err := run("strace", nil, append([]string{"-f", "-c", "-e", "trace=fsync,fdatasync", "-o", out, name}, args...)...)
		check(err)
		f, err := os.Open(out)
		check(err)
		defer f.Close()
		m := map[string]int{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if g := straceLine.FindStringSubmatch(sc.Text()); g != nil {
				n, _ := strconv.Atoi(g[1])
				m[g[2]] = n
			}
		}
		return m
	}
	rk := count(b.rekey, "rotate", "-wait", "-config", dir, "p000000")
	fl := count(b.self, "floor", "-n", "1", "-dir", filepath.Join(dir, "out"))
	fmt.Printf("| fsyncs per rotation (cold `rotate -wait`) | %d fdatasync + %d fsync (≈ %d journal transactions) | %d fdatasync + %d fsync | |\n",
		rk["fdatasync"], rk["fsync"], rk["fdatasync"]/2, fl["fdatasync"], fl["fsync"])
}

func (b *bench) rowAll(n int, viaDaemon bool) {
	dir := b.dir(n, true)
	if !viaDaemon {
		var rk, fl series
		for range b.reps {
			r, err := run(b.rekey, nil, "rotate", "-all", "-wait", "-config", dir)
			check(err)
			rk = append(rk, r.wall)
			fl = append(fl, b.floorRun(n, dir).wall)
		}
		row(fmt.Sprintf("`rotate -all -wait`, %d policies, no daemon", n), rk, fl)
		return
	}
	d := b.startDaemon(dir)
	defer d.stop()
	var rk, fl series
	var batches []string
	for range b.reps {
		r, err := run(b.rekey, nil, "rotate", "-all", "-wait", "-config", dir)
		check(err)
		rk = append(rk, r.wall)
		batches = append(batches, fmtDur(r.wall))
		fl = append(fl, b.floorRun(n, dir).wall)
	}
	row(fmt.Sprintf("`rotate -all -wait`, %d policies, through the daemon (batches: %s)", n, strings.Join(batches, ", ")), rk, fl)
}

func (b *bench) rowIdle(n int, period time.Duration) {
	dir := b.dir(n, true)
	var rss, hwm, cpu []float64
	for range min(b.reps, 3) {
		d := b.startDaemon(dir)
		pid := d.cmd.Process.Pid
		time.Sleep(5 * time.Second)
		c0 := cpuTicks(pid)
		t0 := time.Now()
		time.Sleep(period)
		c1 := cpuTicks(pid)
		secs := time.Since(t0).Seconds()
		r, h := rssKiB(pid)
		d.stop()
		rss = append(rss, float64(r)/1024)
		hwm = append(hwm, float64(h)/1024)
		cpu = append(cpu, 100*float64(c1-c0)/100/secs)
	}
	fmt.Printf("| idle daemon, %d policies: RSS MiB / peak RSS MiB / CPU %% of a core over %s | %s / %s / %s | – | |\n",
		n, period, fseries(rss, "%.0f"), fseries(hwm, "%.0f"), fseries(cpu, "%.2f"))
}

func fseries(v []float64, f string) string {
	c := slices.Clone(v)
	slices.Sort(c)
	return fmt.Sprintf(f+"–"+f+" (median "+f+")", c[0], c[len(c)-1], c[len(c)/2])
}

func (b *bench) rowValidate(n int) {
	dir := b.dir(n, false)
	var rk series
	var rss []float64
	for range b.reps {
		r, err := run(b.rekey, nil, "validate", "-config", dir)
		check(err)
		rk = append(rk, r.wall)
		rss = append(rss, float64(r.maxRSS)/1024)
	}
	fmt.Printf("| `validate`, %d policies (wall; peak RSS MiB %s) | %s | – | |\n", n, fseries(rss, "%.0f"), rk)
}

func cpuTicks(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	check(err)
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func rssKiB(pid int) (rss, hwm int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return rss, hwm
}
