package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator/etcdjournal"
)

// writeOwnership prints, under the status table of a shared journal
// (journal "etcd"), the instance that owns every policy and the instances
// alive. It prints nothing for the embedded journal.
func (a *app) writeOwnership(cfg *policies.Config) {
	js := cfg.Journal
	if js == nil {
		return
	}
	cli, err := etcdjournal.Dial(etcdjournal.Config{Endpoints: js.Endpoints, CAFile: js.CAFile, CertFile: js.CertFile, KeyFile: js.KeyFile})
	if err != nil {
		fmt.Fprintf(a.stdout, "\nowner: unknown (%v)\n", err)
		return
	}
	defer cli.Close()
	ctx := context.Background()
	owner, err := etcdjournal.Owner(ctx, cli, js.Prefix)
	switch {
	case err != nil:
		fmt.Fprintf(a.stdout, "\nowner: unknown (%v)\n", err)
		return
	case owner == "":
		owner = "none (no instance owns the policies: none runs, or etcd has no quorum)"
	}
	fmt.Fprintf(a.stdout, "\nowner of every policy: %s (journal \"etcd\", prefix %s)\n", owner, js.Prefix)
	inst, err := etcdjournal.Instances(ctx, cli, js.Prefix)
	if err != nil {
		fmt.Fprintf(a.stdout, "instances alive: unknown (%v)\n", err)
		return
	}
	fmt.Fprintf(a.stdout, "instances alive: %s\n", strings.Join(inst, ", "))
}
