package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/rekeyhq/rekey/policies"
	"github.com/rekeyhq/rekey/rotator"
	"github.com/rekeyhq/rekey/rotator/etcdjournal"
)

// ownership reads, from a shared journal (journal "etcd"), the instance
// that owns every policy ("" when none does) and the instances alive.
func ownership(ctx context.Context, js *policies.JournalSettings) (owner string, alive []string, err error) {
	cli, err := etcdjournal.Dial(etcdjournal.Config{Endpoints: js.Endpoints, CAFile: js.CAFile, CertFile: js.CertFile, KeyFile: js.KeyFile})
	if err != nil {
		return "", nil, err
	}
	defer cli.Close()
	if owner, err = etcdjournal.Owner(ctx, cli, js.Prefix); err != nil {
		return "", nil, err
	}
	alive, err = etcdjournal.Instances(ctx, cli, js.Prefix)
	return owner, alive, err
}

// fillOwner sets the owner of every policy in st, for status -json, with
// journal "etcd". It does nothing for the embedded journal.
func fillOwner(cfg *policies.Config, st []rotator.PolicyStatus) {
	if cfg.Journal == nil {
		return
	}
	owner, _, err := ownership(context.Background(), cfg.Journal)
	switch {
	case err != nil:
		owner = "unknown"
	case owner == "":
		owner = "none"
	}
	for i := range st {
		st[i].Owner = owner
	}
}

// writeOwnership prints, under the status table of a shared journal
// (journal "etcd"), the instance that owns every policy and the instances
// alive. It prints nothing for the embedded journal.
func (a *app) writeOwnership(cfg *policies.Config) {
	js := cfg.Journal
	if js == nil {
		return
	}
	owner, alive, err := ownership(context.Background(), js)
	if err != nil && owner == "" {
		fmt.Fprintf(a.stdout, "\nowner: unknown (%v)\n", err)
		return
	}
	if owner == "" {
		owner = "none (no instance owns the policies: none runs, or etcd has no quorum)"
	}
	fmt.Fprintf(a.stdout, "\nowner of every policy: %s (journal \"etcd\", prefix %s)\n", owner, js.Prefix)
	if err != nil {
		fmt.Fprintf(a.stdout, "instances alive: unknown (%v)\n", err)
		return
	}
	fmt.Fprintf(a.stdout, "instances alive: %s\n", strings.Join(alive, ", "))
}
