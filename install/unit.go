// Package install holds the files that install rekey as a service (the
// systemd unit, packaging, the tarball installer) and the tests that check
// them with the real tools.
package install

import _ "embed"

// SystemdUnit is the hardened systemd unit install/rekey.service, embedded so
// that `rekey service install` writes exactly what the packages ship. Its
// ExecStart line is "ExecStart=/usr/bin/rekey run -config /etc/rekey".
//
//go:embed rekey.service
var SystemdUnit string
