// Package standard blank-imports every plugin kind shipped with rekey, so
// that importing it registers the whole standard set (Caddy's
// modules/standard pattern). Adding a kind adds one line here.
package standard

import (
	_ "github.com/rekeyhq/rekey/connections/aws"
	_ "github.com/rekeyhq/rekey/connections/vault"
	_ "github.com/rekeyhq/rekey/notifiers/exec"
	_ "github.com/rekeyhq/rekey/notifiers/webhook"
	_ "github.com/rekeyhq/rekey/probes/awssts"
	_ "github.com/rekeyhq/rekey/probes/exec"
	_ "github.com/rekeyhq/rekey/probes/http"
	_ "github.com/rekeyhq/rekey/probes/mysql"
	_ "github.com/rekeyhq/rekey/probes/postgres"
	_ "github.com/rekeyhq/rekey/probes/prometheus"
	_ "github.com/rekeyhq/rekey/probes/redis"
	_ "github.com/rekeyhq/rekey/probes/vaultlogin"
	_ "github.com/rekeyhq/rekey/providers/awsiam"
	_ "github.com/rekeyhq/rekey/providers/exec"
	_ "github.com/rekeyhq/rekey/providers/http"
	_ "github.com/rekeyhq/rekey/providers/kong"
	_ "github.com/rekeyhq/rekey/providers/mysql"
	_ "github.com/rekeyhq/rekey/providers/postgres"
	_ "github.com/rekeyhq/rekey/providers/random"
	_ "github.com/rekeyhq/rekey/providers/redis"
	_ "github.com/rekeyhq/rekey/providers/vaultapprole"
	_ "github.com/rekeyhq/rekey/reloaders/exec"
	_ "github.com/rekeyhq/rekey/sinks/awssm"
	_ "github.com/rekeyhq/rekey/sinks/file"
	_ "github.com/rekeyhq/rekey/sinks/kubesecret"
	_ "github.com/rekeyhq/rekey/sinks/vaultkv"
)
