//go:build windows

package main

import (
	"context"
	"fmt"
	"os"

	"github.com/kardianos/service"
	"golang.org/x/sys/windows"
)

// runHosted runs the daemon as a Windows service when the service control
// manager started this process: no console is attached to it and
// kardianos/service agrees. It returns handled == false for an interactive
// `rekey run`, which then runs as a console program (Ctrl+C stops it).
func runHosted(a *app, cfgPath string) (handled bool, code int) {
	if onConsole() || service.Interactive() {
		return false, 0
	}
	p := &hostedDaemon{cfgPath: cfgPath}
	s, err := service.New(p, &service.Config{Name: serviceName})
	if err != nil {
		fmt.Fprintf(a.stderr, "rekey run: %v\n", err)
		return true, ExitRuntime
	}
	p.log, err = s.Logger(nil)
	if err != nil {
		fmt.Fprintf(a.stderr, "rekey run: opening the Event Log source %s (rekey service install registers it): %v\n", serviceName, err)
		return true, ExitRuntime
	}
	if err := s.Run(); err != nil {
		_ = p.log.Errorf("rekey service: %v", err)
		return true, ExitRuntime
	}
	return true, p.code
}

// onConsole reports whether stdin, stdout or stderr is a console: a
// person runs rekey, not the service control manager.
func onConsole() bool {
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		var mode uint32
		if f != nil && windows.GetConsoleMode(windows.Handle(f.Fd()), &mode) == nil {
			return true
		}
	}
	return false
}

// hostedDaemon is the daemon as a service.Interface: Start runs it in a
// goroutine, with its output going to the Event Log; Stop cancels it and
// waits until it has reached a safe point and returned.
type hostedDaemon struct {
	cfgPath string
	log     service.Logger
	cancel  context.CancelFunc
	done    chan struct{}
	code    int
}

// Start implements service.Interface.
func (p *hostedDaemon) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done = make(chan struct{})
	w := newEventLogWriter(p.log)
	a := &app{stdout: w, stderr: w}
	go func() {
		defer close(p.done)
		code := a.daemon(ctx, p.cfgPath)
		w.Close()
		p.code = code
		if ctx.Err() == nil {
			// Stopped on its own (invalid configuration, journal locked):
			// exit without reporting Stopped, so that the service control
			// manager applies its recovery actions (restart after 5 s).
			if code == ExitOK {
				code = ExitRuntime
			}
			_ = p.log.Errorf("rekey stopped on its own with exit code %d; the service control manager restarts it per its recovery settings", code)
			os.Exit(code)
		}
	}()
	return nil
}

// Stop implements service.Interface.
func (p *hostedDaemon) Stop(service.Service) error {
	p.cancel()
	<-p.done
	return nil
}
