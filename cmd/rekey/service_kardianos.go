//go:build !linux

package main

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/kardianos/service"
)

// kardianosManager manages the service through kardianos/service: the
// service control manager on Windows, launchd on macOS.
type kardianosManager struct {
	o   serviceOptions
	svc service.Service
}

// idleProgram is the service.Interface of a process that only manages the
// service and does not host it.
type idleProgram struct{}

func (idleProgram) Start(service.Service) error { return nil }
func (idleProgram) Stop(service.Service) error  { return nil }

// serviceConfig describes the rekey service to kardianos/service.
func serviceConfig(o serviceOptions) *service.Config {
	c := &service.Config{
		Name:        serviceName,
		DisplayName: "rekey secrets rotation",
		Description: "Rotates credentials per policy: create, stage, test, promote, verify, revoke.",
		Executable:  o.executable,
		Arguments:   []string{"run", "-config", o.configPath},
	}
	switch runtime.GOOS {
	case "windows":
		c.Option = service.KeyValue{
			"StartType":              "automatic",
			"DelayedAutoStart":       true,
			"OnFailure":              "restart",
			"OnFailureDelayDuration": "5s",
			"OnFailureResetPeriod":   86400,
		}
	case "darwin":
		c.Option = service.KeyValue{"KeepAlive": true, "RunAtLoad": true}
	}
	return c
}

func newServiceManager(o serviceOptions) (serviceManager, error) {
	if o.root != "" {
		return nil, refused("-root works only with systemd (Linux)")
	}
	s, err := service.New(idleProgram{}, serviceConfig(o))
	if err != nil {
		return nil, fmt.Errorf("this system's service manager is not supported: %w", err)
	}
	return &kardianosManager{o: o, svc: s}, nil
}

func (m *kardianosManager) installed() (bool, error) {
	_, err := m.svc.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("querying the service: %w", err)
	}
	return true, nil
}

func (m *kardianosManager) install() error {
	ok, err := m.installed()
	if err != nil {
		return err
	}
	if ok {
		if !m.o.force {
			return refused("the service %s is already installed; rerun with -force to replace it (that stops it)", serviceName)
		}
		_ = m.svc.Stop()
		if err := m.svc.Uninstall(); err != nil {
			return fmt.Errorf("removing the installed service: %w", err)
		}
	}
	if err := m.svc.Install(); err != nil {
		return fmt.Errorf("installing the service (run as Administrator or root): %w", err)
	}
	fmt.Fprintf(m.o.stdout, "installed the service %s (%s); it starts at boot and runs\n  %s run -config %s\nstart it with: rekey service start\n",
		serviceName, m.svc.Platform(), m.o.executable, m.o.configPath)
	return nil
}

func (m *kardianosManager) uninstall() error {
	ok, err := m.installed()
	if err != nil {
		return err
	}
	if !ok {
		fmt.Fprintf(m.o.stdout, "the service %s is not installed: nothing to do\n", serviceName)
		return nil
	}
	if st, _ := m.svc.Status(); st == service.StatusRunning {
		if err := m.svc.Stop(); err != nil {
			return fmt.Errorf("stopping the service: %w", err)
		}
	}
	if err := m.svc.Uninstall(); err != nil {
		return fmt.Errorf("removing the service: %w", err)
	}
	fmt.Fprintf(m.o.stdout, "removed the service %s\n", serviceName)
	return nil
}

func (m *kardianosManager) start() error   { return m.control("start", m.svc.Start, "started") }
func (m *kardianosManager) stop() error    { return m.control("stop", m.svc.Stop, "stopped") }
func (m *kardianosManager) restart() error { return m.control("restart", m.svc.Restart, "restarted") }

func (m *kardianosManager) control(verb string, f func() error, done string) error {
	if ok, err := m.installed(); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: install it with: rekey service install -config PATH", service.ErrNotInstalled)
	}
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	fmt.Fprintf(m.o.stdout, "%s the service %s\n", done, serviceName)
	return nil
}

func (m *kardianosManager) status() (service.Status, []string, error) {
	st, err := m.svc.Status()
	if err != nil {
		return service.StatusUnknown, nil, err
	}
	return st, []string{"manager: " + m.svc.Platform()}, nil
}
